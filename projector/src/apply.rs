//! Applying stream entries to the projections: turns decoded entries into the arguments of
//! `apply.lua` and runs it, one partition and one batch per call. Decoding happens before
//! (in the engine, `eventlog`, or the rebuild source); this module only knows decoded entries.

use std::collections::HashMap;
use std::sync::LazyLock;

use eventlog::{Entry, Script};
use fred::clients::Client;
use fred::types::Value;
use limiter::Outcome;
use limiter::delivery::Record;

use crate::keys::{
    DAY_SPAN, MINUTE_SPAN, PartitionKeys, SECOND_SPAN, TOP_MINUTES, day_of, minute_of, second_of,
};

/// The atomic apply step; see `apply.lua`'s header for keys and arguments.
static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("apply.lua")));

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

/// What one apply call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    /// Entries the engine set aside as dead letters (undecodable, gone, over the cap).
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
        let event = match &entry.record {
            Record::Decision(event) => event,
            Record::Status(status) => {
                args.push(Value::from("s"));
                args.push(Value::from(second_of(status.at_us)));
                args.push(Value::from(minute_of(status.at_us)));
                args.push(Value::from(day_of(status.at_us)));
                args.push(Value::from(0));
                args.push(Value::from(status.status.as_str()));
                let latency = status.latency_us.map(limiter::delivery::latency_bucket);
                args.push(latency.map_or(Value::from(""), |bucket| Value::from(bucket as i64)));
                args.push(Value::from(""));
                continue;
            }
        };
        let minute = minute_of(event.at_us);
        let mut top = 0;
        if event.outcome != Outcome::Accepted {
            top = *top_index.entry(minute).or_insert_with(|| {
                script_keys.push(keys.top_clients(minute));
                script_keys.push(keys.top_numbers(minute));
                script_keys.len() - 1
            });
        }
        let mut member = entry.id.padded().into_bytes();
        member.extend_from_slice(&entry.raw);
        args.push(Value::from(match event.outcome {
            Outcome::Accepted => "a",
            // A blocked request is a refusal too; its reason is on the event.
            Outcome::Rejected | Outcome::Blocked => "r",
        }));
        args.push(Value::from(second_of(event.at_us)));
        args.push(Value::from(minute));
        args.push(Value::from(day_of(event.at_us)));
        args.push(Value::from(top as i64));
        args.push(Value::from(event.client_key()));
        args.push(Value::Bytes(member.into()));
        args.push(Value::from(event.to.as_str()));
    }
    let reply: Vec<i64> = APPLY.run(redis, script_keys, args).await?;
    let at = |i: usize| usize::try_from(reply.get(i).copied().unwrap_or(0)).unwrap_or(0);
    Ok(ApplyReport {
        applied: at(0),
        dead_lettered: 0,
        skipped: at(1),
    })
}
