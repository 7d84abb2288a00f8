//! Redis side of the archiver: the consumer group on each partition's stream, reading new,
//! own-pending and abandoned entries, settling a batch (dead letters + XACK), and the
//! maintenance script that trims below what every group still needs and measures the lag.

use std::collections::HashMap;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{LuaInterface, StreamsInterface};
use fred::types::Value;
use fred::types::streams::XPendingArgs;

use crate::GROUP;
use crate::entry::{self, StreamEntry};
use crate::error::ArchiverError;

const MAINTAIN_LUA: &str = include_str!("maintain.lua");
const SETTLE_LUA: &str = include_str!("settle.lua");
const FORGET_LUA: &str = include_str!("forget.lua");

/// Dead-letter streams are capped (approximately) so a flood of garbage cannot exhaust Redis;
/// each dead letter is also logged and counted.
pub const DEAD_LETTER_CAP: u64 = 100_000;

/// Creates the archiver group on `stream` (and the stream itself) if missing. The group starts
/// at the beginning of the stream, so events written before the first archiver ran are archived.
pub async fn ensure_group(redis: &Client, stream: &str) -> Result<(), ArchiverError> {
    match redis
        .xgroup_create::<Value, _, _, _>(stream, GROUP, "0", true)
        .await
    {
        Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
        other => other.map(drop).map_err(Into::into),
    }
}

/// Reads up to `count` entries of partition `partition` through the group: `id` `>` for new
/// entries, or an id for this consumer's own pending entries after it.
pub async fn read(
    redis: &Client,
    partition: u16,
    stream: &str,
    consumer: &str,
    id: &str,
    count: usize,
) -> Result<Vec<StreamEntry>, ArchiverError> {
    let reply: Value = redis
        .xreadgroup(GROUP, consumer, Some(count as u64), None, false, stream, id)
        .await?;
    entry::parse_read_reply(partition, reply)
}

/// Claims up to `count` entries pending longer than `min_idle` on any consumer, scanning from
/// `cursor`. Returns the next cursor (`0-0` when the scan is complete) and the claimed entries.
pub async fn autoclaim(
    redis: &Client,
    partition: u16,
    stream: &str,
    consumer: &str,
    min_idle: Duration,
    cursor: &str,
    count: usize,
) -> Result<(String, Vec<StreamEntry>), ArchiverError> {
    let reply: Value = redis
        .xautoclaim(
            stream,
            GROUP,
            consumer,
            u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX),
            cursor,
            Some(count as u64),
            false,
        )
        .await?;
    entry::parse_autoclaim_reply(partition, reply)
}

/// How often each of `entries` (pending on `consumer`) has been delivered.
pub async fn deliveries(
    redis: &Client,
    stream: &str,
    consumer: &str,
    entries: &[StreamEntry],
) -> Result<HashMap<String, u64>, ArchiverError> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(HashMap::new());
    };
    let args = XPendingArgs {
        idle: None,
        start: Some(first.id.as_str().into()),
        end: Some(last.id.as_str().into()),
        count: Some(entries.len() as u64),
        consumer: Some(consumer.into()),
    };
    let reply: Value = redis.xpending(stream, GROUP, args).await?;
    let mut counts = HashMap::new();
    for row in reply.into_array() {
        let row = row.into_array();
        if let (Some(id), Some(n)) = (
            row.first().and_then(Value::as_string),
            row.get(3).and_then(Value::as_u64),
        ) {
            counts.insert(id, n);
        }
    }
    Ok(counts)
}

/// Resets the idle time of entries this consumer still holds (XCLAIM … JUSTID does not count
/// as a delivery), so other archivers do not claim a batch that is only waiting for Postgres.
pub async fn renew(
    redis: &Client,
    stream: &str,
    consumer: &str,
    ids: Vec<String>,
) -> Result<(), ArchiverError> {
    if ids.is_empty() {
        return Ok(());
    }
    redis
        .xclaim::<Value, _, _, _, _>(
            stream, GROUP, consumer, 0, ids, None, None, None, false, true,
        )
        .await?;
    Ok(())
}

/// A dead letter: the entry, and why it cannot be archived.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub entry: StreamEntry,
    pub reason: String,
}

/// Writes `dead` to the partition's dead-letter stream and acks `ack` (which includes the dead
/// letters' ids), atomically. Returns how many entries were acked.
pub async fn settle(
    redis: &Client,
    stream: &str,
    dead_letters: &str,
    dead: &[DeadLetter],
    ack: &[&str],
) -> Result<u64, ArchiverError> {
    let mut args: Vec<Value> = Vec::with_capacity(3 + 3 * dead.len() + ack.len());
    args.push(GROUP.into());
    args.push(Value::Integer(DEAD_LETTER_CAP as i64));
    args.push(Value::Integer(dead.len() as i64));
    for d in dead {
        args.push(d.entry.id.as_str().into());
        args.push(d.reason.as_str().into());
        args.push(Value::Bytes(d.entry.raw().to_vec().into()));
    }
    args.extend(ack.iter().map(|id| Value::from(*id)));
    let acked: u64 = redis
        .eval(SETTLE_LUA, vec![stream, dead_letters], args)
        .await?;
    Ok(acked)
}

/// One stream as the maintenance script measured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Entries on the stream (after trimming).
    pub length: u64,
    /// Entries the archiver group has read but not acked.
    pub pending: u64,
    /// Entries the archiver group has not read yet.
    pub undelivered: u64,
    /// Age of the oldest entry not yet archived, by Redis's clock; zero when none.
    pub oldest_age: Duration,
    /// Entries removed by this call.
    pub trimmed: u64,
}

impl StreamState {
    /// Entries on this stream not yet archived.
    pub fn lag(&self) -> u64 {
        self.pending + self.undelivered
    }
}

/// Measures `stream` and, when `trim`, trims it below the oldest entry any group still needs
/// (XTRIM MINID, never a blind MAXLEN).
pub async fn maintain(
    redis: &Client,
    stream: &str,
    trim: bool,
) -> Result<StreamState, ArchiverError> {
    let reply: Vec<i64> = redis
        .eval(
            MAINTAIN_LUA,
            vec![stream],
            vec![GROUP, if trim { "1" } else { "0" }],
        )
        .await?;
    let [length, pending, undelivered, oldest_ms, now_ms, trimmed] = reply[..] else {
        return Err(ArchiverError::Reply(format!(
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
    redis: &Client,
    stream: &str,
    consumer: &str,
    idle: Duration,
) -> Result<u64, ArchiverError> {
    let removed: u64 = redis
        .eval(
            FORGET_LUA,
            vec![stream],
            vec![
                GROUP.to_owned(),
                consumer.to_owned(),
                idle.as_millis().to_string(),
            ],
        )
        .await?;
    Ok(removed)
}
