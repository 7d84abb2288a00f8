//! Applying stream entries to the projections: turns decoded entries into the arguments of
//! `apply.lua` and runs it, one partition and one batch per call. Decoding happens before
//! (in [`crate::consumer`] or the rebuild source); this module only knows typed entries.

use std::collections::HashMap;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::Value;
use limiter::delivery::{Record, StatusEvent, decode_record};
use limiter::{Event, Outcome, codec};

use crate::keys::{
    DAY_SPAN, MINUTE_SPAN, PartitionKeys, SECOND_SPAN, StreamId, TOP_MINUTES, day_of, minute_of,
    second_of,
};

/// The Lua source of the atomic apply step; see its header for keys and arguments.
pub const APPLY_LUA: &str = include_str!("apply.lua");

/// How much of the event history the capped lists keep, per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Newest events kept in the "recent" and "accepted" lists.
    pub recent: usize,
    /// Newest rejected events kept; violations are what operators dig into, so keep more.
    pub violations: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            recent: 1_000,
            violations: 10_000,
        }
    }
}

/// One stream entry as the projector sees it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: StreamId,
    pub body: Body,
}

#[derive(Clone, Debug)]
pub enum Body {
    /// A decoded event and the exact bytes it was decoded from (kept as stored on the stream).
    Event { event: Box<Event>, raw: Bytes },
    /// A delivery status change: counted per minute and status, never as a decision.
    Status { event: Box<StatusEvent> },
    /// An entry that is not an event this code understands: it goes to the dead letters.
    Undecodable { raw: Bytes, error: String },
    /// A pending entry whose data was trimmed from the stream before it was read.
    Gone,
}

impl Entry {
    /// Decodes the fields of one stream entry; an empty field map means the entry is gone.
    pub fn from_fields(id: StreamId, fields: &HashMap<String, Bytes>) -> Self {
        if fields.is_empty() {
            return Self {
                id,
                body: Body::Gone,
            };
        }
        let body = match fields.get(codec::EVENT_FIELD) {
            None => Body::Undecodable {
                raw: Bytes::new(),
                error: format!("no `{}` field", codec::EVENT_FIELD),
            },
            Some(raw) => match decode_record(raw) {
                Ok(Record::Decision(event)) => Body::Event {
                    event: Box::new(event),
                    raw: raw.clone(),
                },
                Ok(Record::Status(event)) => Body::Status {
                    event: Box::new(event),
                },
                Err(e) => Body::Undecodable {
                    raw: raw.clone(),
                    error: e.to_string(),
                },
            },
        };
        Self { id, body }
    }

    pub fn event(&self) -> Option<&Event> {
        match &self.body {
            Body::Event { event, .. } => Some(event),
            _ => None,
        }
    }
}

/// What one apply call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    pub dead_lettered: usize,
    /// Entries another delivery had already applied (redeliveries), acknowledged and ignored.
    pub skipped: usize,
}

impl std::ops::AddAssign for ApplyReport {
    fn add_assign(&mut self, other: Self) {
        self.applied += other.applied;
        self.dead_lettered += other.dead_lettered;
        self.skipped += other.skipped;
    }
}

/// Applies `entries` (all of `keys.partition`, in stream order) atomically. With a `group`,
/// each entry counts only if this call acknowledges it; without one (rebuild) every entry
/// counts and nothing is acknowledged.
pub async fn apply(
    redis: &Client,
    keys: &PartitionKeys,
    group: Option<&str>,
    retention: &Retention,
    entries: &[Entry],
) -> Result<ApplyReport, fred::error::Error> {
    if entries.is_empty() {
        return Ok(ApplyReport::default());
    }
    let mut script_keys = vec![
        keys.stream.clone(),
        keys.seconds.clone(),
        keys.minutes.clone(),
        keys.days.clone(),
        keys.recent.clone(),
        keys.accepted.clone(),
        keys.violations.clone(),
        keys.dead_letters.clone(),
    ];
    // Lua indexes of each minute's (clients, numbers) pair of top lists.
    let mut top_index: HashMap<i64, usize> = HashMap::new();
    let mut args: Vec<Value> = Vec::with_capacity(8 + 9 * entries.len());
    args.push(Value::from(group.unwrap_or("")));
    args.push(Value::from(retention.recent as i64));
    args.push(Value::from(retention.violations as i64));
    args.push(Value::from(SECOND_SPAN));
    args.push(Value::from(MINUTE_SPAN));
    args.push(Value::from(DAY_SPAN));
    args.push(Value::from(TOP_MINUTES));
    args.push(Value::from(entries.len() as i64));
    for entry in entries {
        args.push(Value::from(entry.id.to_string()));
        match &entry.body {
            Body::Event { event, raw } => {
                let minute = minute_of(event.at_us);
                let mut top = 0;
                if event.outcome == Outcome::Rejected {
                    top = *top_index.entry(minute).or_insert_with(|| {
                        script_keys.push(keys.top_clients(minute));
                        script_keys.push(keys.top_numbers(minute));
                        script_keys.len() - 1
                    });
                }
                let mut member = entry.id.padded().into_bytes();
                member.extend_from_slice(raw);
                args.push(Value::from(match event.outcome {
                    Outcome::Accepted => "a",
                    Outcome::Rejected => "r",
                }));
                args.push(Value::from(second_of(event.at_us)));
                args.push(Value::from(minute));
                args.push(Value::from(day_of(event.at_us)));
                args.push(Value::from(top as i64));
                args.push(Value::from(event.client_key()));
                args.push(Value::Bytes(member.into()));
                args.push(Value::from(event.to.as_str()));
            }
            Body::Status { event } => {
                args.push(Value::from("s"));
                args.push(Value::from(second_of(event.at_us)));
                args.push(Value::from(minute_of(event.at_us)));
                args.push(Value::from(day_of(event.at_us)));
                args.push(Value::from(0));
                args.push(Value::from(event.status.as_str()));
                args.extend(["", ""].map(Value::from));
            }
            Body::Undecodable { raw, error } => {
                args.push(Value::from("d"));
                args.extend([0, 0, 0, 0].map(Value::from));
                args.push(Value::from(error.as_str()));
                args.push(Value::Bytes(raw.clone()));
                args.push(Value::from(""));
            }
            Body::Gone => {
                args.push(Value::from("g"));
                args.extend([0, 0, 0, 0].map(Value::from));
                args.extend(["", "", ""].map(Value::from));
            }
        }
    }
    let sha = fred::util::sha1_hash(APPLY_LUA);
    let reply: Vec<i64> = match redis
        .evalsha(sha.as_str(), script_keys.clone(), args.clone())
        .await
    {
        // EVAL both runs and caches the script, e.g. after a Redis restart or failover.
        Err(e) if e.details().starts_with("NOSCRIPT") => {
            redis.eval(APPLY_LUA, script_keys, args).await?
        }
        other => other?,
    };
    let at = |i: usize| usize::try_from(reply.get(i).copied().unwrap_or(0)).unwrap_or(0);
    Ok(ApplyReport {
        applied: at(0),
        dead_lettered: at(1),
        skipped: at(2),
    })
}
