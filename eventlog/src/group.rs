//! One consumer group on one partition's stream: the Redis commands the engine is made of.
//! Public so tests and tools can play a crashed consumer (read and never ack) with the same
//! code the engine uses.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use fred::types::streams::XPendingArgs;

use crate::LogError;
use crate::dead::{DEAD_LETTER_CAP, DeadLetter};
use crate::id::StreamId;
use crate::reply::{self, RawEntry};
use crate::script::Script;

static MAINTAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/maintain.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));
static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/forget.lua")));

/// A consumer group on one stream.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    pub stream: &'a str,
    pub group: &'a str,
}

/// Where to read from: new entries, or this consumer's own pending entries after an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    New,
    PendingAfter(StreamId),
}

impl From {
    /// This consumer's own pending entries from the start.
    pub const PENDING: Self = Self::PendingAfter(StreamId { ms: 0, seq: 0 });

    pub(crate) fn arg(&self) -> String {
        match self {
            Self::New => ">".to_owned(),
            Self::PendingAfter(id) => id.to_string(),
        }
    }
}

/// True when `error` says the stream or the group is missing (e.g. the namespace was reset):
/// the group must be created again.
pub fn is_missing_group(error: &fred::error::Error) -> bool {
    error.details().starts_with("NOGROUP")
}

impl Group<'_> {
    /// Creates the group (and the stream) if missing. The group starts at the beginning of the
    /// stream, so entries written before the first consumer ran are read too.
    pub async fn ensure(&self, redis: &Client) -> Result<(), LogError> {
        match redis
            .xgroup_create::<Value, _, _, _>(self.stream, self.group, "0", true)
            .await
        {
            Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
            other => other.map(drop).map_err(Into::into),
        }
    }

    /// Reads up to `count` entries as `consumer`, without blocking.
    pub async fn read(
        &self,
        redis: &Client,
        consumer: &str,
        from: From,
        count: usize,
    ) -> Result<Vec<RawEntry>, LogError> {
        let reply: Value = redis
            .xreadgroup(
                self.group,
                consumer,
                Some(count as u64),
                None,
                false,
                self.stream,
                from.arg(),
            )
            .await?;
        Ok(reply::parse_xread(reply)?
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect())
    }

    /// Claims up to `count` entries pending longer than `min_idle` on any consumer, scanning
    /// from `cursor`; the next cursor is `0-0` when the scan is complete.
    pub async fn autoclaim(
        &self,
        redis: &Client,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<RawEntry>), LogError> {
        let reply: Value = redis
            .xautoclaim(
                self.stream,
                self.group,
                consumer,
                millis(min_idle),
                cursor,
                Some(count as u64),
                false,
            )
            .await?;
        reply::parse_autoclaim(reply)
    }

    /// How often each entry of `first..=last` pending on `consumer` has been delivered.
    pub async fn deliveries(
        &self,
        redis: &Client,
        consumer: &str,
        first: StreamId,
        last: StreamId,
        count: usize,
    ) -> Result<HashMap<StreamId, u64>, LogError> {
        let args = XPendingArgs {
            idle: None,
            start: Some(first.to_string().into()),
            end: Some(last.to_string().into()),
            count: Some(count as u64),
            consumer: Some(consumer.into()),
        };
        let reply: Value = redis.xpending(self.stream, self.group, args).await?;
        let mut counts = HashMap::new();
        for row in reply.into_array() {
            let row = row.into_array();
            let id = row
                .first()
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<StreamId>().ok());
            if let (Some(id), Some(n)) = (id, row.get(3).and_then(Value::as_u64)) {
                counts.insert(id, n);
            }
        }
        Ok(counts)
    }

    /// Resets the idle time of entries `consumer` still holds (XCLAIM … JUSTID does not count
    /// as a delivery), so nobody claims a batch that is only waiting for a dependency.
    pub async fn renew(
        &self,
        redis: &Client,
        consumer: &str,
        ids: &[StreamId],
    ) -> Result<(), LogError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(StreamId::to_string).collect();
        redis
            .xclaim::<Value, _, _, _, _>(
                self.stream,
                self.group,
                consumer,
                0,
                ids,
                None,
                None,
                None,
                false,
                true,
            )
            .await?;
        Ok(())
    }

    /// Writes `dead` to `dead_letters` and acks `ack` (which should include the dead letters'
    /// ids), atomically. Returns how many entries were acked.
    pub async fn settle(
        &self,
        redis: &Client,
        dead_letters: &str,
        dead: &[DeadLetter],
        ack: &[StreamId],
    ) -> Result<u64, LogError> {
        if dead.is_empty() && ack.is_empty() {
            return Ok(0);
        }
        let per_letter = dead.first().map_or(0, |d| d.fields().len() * 2);
        let mut args: Vec<Value> = Vec::with_capacity(4 + per_letter * dead.len() + ack.len());
        args.push(self.group.into());
        args.push(Value::Integer(DEAD_LETTER_CAP as i64));
        args.push(Value::Integer(dead.len() as i64));
        args.push(Value::Integer(per_letter as i64));
        for d in dead {
            for (name, value) in d.fields() {
                args.push(name.into());
                args.push(value);
            }
        }
        args.extend(ack.iter().map(|id| Value::from(id.to_string())));
        Ok(SETTLE
            .run(redis, vec![self.stream, dead_letters], args)
            .await?)
    }

    /// Measures the stream for this group and, when `trim`, trims it below the oldest entry
    /// any group still needs (XTRIM MINID, never a blind MAXLEN).
    pub async fn maintain(&self, redis: &Client, trim: bool) -> Result<StreamState, LogError> {
        let reply: Vec<i64> = MAINTAIN
            .run(
                redis,
                vec![self.stream],
                vec![self.group, if trim { "1" } else { "0" }],
            )
            .await?;
        let [length, pending, undelivered, oldest_ms, now_ms, trimmed] = reply[..] else {
            return Err(LogError::Reply(format!(
                "maintenance script returned {} values",
                reply.len()
            )));
        };
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        let oldest_age = if oldest_ms < 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(non_negative(now_ms - oldest_ms))
        };
        Ok(StreamState {
            length: non_negative(length),
            pending: non_negative(pending),
            undelivered: non_negative(undelivered),
            oldest_age,
            trimmed: non_negative(trimmed),
        })
    }

    /// Removes consumers other than `consumer` that hold nothing and have been idle for `idle`.
    pub async fn forget_idle_consumers(
        &self,
        redis: &Client,
        consumer: &str,
        idle: Duration,
    ) -> Result<u64, LogError> {
        Ok(FORGET
            .run(
                redis,
                vec![self.stream],
                vec![
                    self.group.to_owned(),
                    consumer.to_owned(),
                    millis(idle).to_string(),
                ],
            )
            .await?)
    }
}

/// One stream as the maintenance script measured it for one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Entries on the stream (after trimming).
    pub length: u64,
    /// Entries the group has read but not acked.
    pub pending: u64,
    /// Entries the group has not read yet.
    pub undelivered: u64,
    /// Age of the oldest entry the group has not settled, by Redis's clock; zero when none.
    pub oldest_age: Duration,
    /// Entries removed by this call.
    pub trimmed: u64,
}

impl StreamState {
    /// Entries on this stream the group has not settled yet.
    pub fn lag(&self) -> u64 {
        self.pending + self.undelivered
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
