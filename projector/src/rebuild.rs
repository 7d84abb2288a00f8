//! Recomputing the projections from history: `smsgate projector --rebuild`.
//!
//! The source is any stream of `(stream id, Event)` in stream order per partition, so the
//! binary can chain the Postgres archive and the Redis stream's tail; an item not newer than
//! the last one applied for its partition is skipped, which makes the overlap between the two
//! harmless. Projections are reset first and the `projector` group is moved to the last
//! rebuilt entry of each partition afterwards, so the live consumers continue exactly where
//! the rebuild stopped. Run it with the projector consumers stopped.

use std::collections::VecDeque;

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::interfaces::{KeysInterface, StreamsInterface};
use futures::{Stream, StreamExt};
use limiter::{Event, Layout, codec};

use eventlog::Entry;

use crate::apply::{Retention, apply};
use crate::consumer::GROUP;
use crate::error::ProjectorError;
use crate::keys::{PartitionKeys, StreamId, TOP_MINUTES, minute_of};

/// Entries applied per script call.
const BATCH: usize = 500;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub applied: usize,
    /// Items not newer than their partition's last applied one (archive/stream overlap).
    pub skipped: usize,
    /// The last applied entry of each partition, where the group now stands.
    pub last_ids: Vec<Option<StreamId>>,
}

/// Resets the projections, applies every event of `source`, then points the consumer group of
/// each partition at the last entry applied (dropping its pending list: all of it is counted).
pub async fn rebuild<S, E>(
    redis: &Pool,
    layout: &Layout,
    retention: &Retention,
    now_us: i64,
    source: S,
) -> Result<RebuildReport, ProjectorError>
where
    S: Stream<Item = Result<(String, Event), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let parts = PartitionKeys::all(layout);
    reset(redis.next(), &parts, now_us).await?;
    let mut report = RebuildReport {
        last_ids: vec![None; parts.len()],
        ..RebuildReport::default()
    };
    let mut pending: Vec<Vec<Entry>> = vec![Vec::new(); parts.len()];
    let mut source = std::pin::pin!(source);
    while let Some(item) = source.next().await {
        let (id, event) = item.map_err(|e| ProjectorError::Source(e.into()))?;
        let id: StreamId = id
            .parse()
            .map_err(|e: eventlog::BadStreamId| ProjectorError::Source(e.into()))?;
        let p = usize::from(layout.partition_of(&event.client_key()));
        if report.last_ids[p].is_some_and(|last| id <= last) {
            report.skipped += 1;
            continue;
        }
        report.last_ids[p] = Some(id);
        let raw = Bytes::from(codec::encode(&event));
        pending[p].push(Entry {
            partition: u16::try_from(p).unwrap_or(0),
            id,
            deliveries: 1,
            raw,
            record: limiter::delivery::Record::Decision(event),
        });
        if pending[p].len() >= BATCH {
            report.applied += apply(redis.next(), &parts[p], None, retention, &pending[p])
                .await?
                .applied;
            pending[p].clear();
        }
    }
    for (p, entries) in pending.iter().enumerate() {
        report.applied += apply(redis.next(), &parts[p], None, retention, entries)
            .await?
            .applied;
    }
    for (keys, last) in parts.iter().zip(&report.last_ids) {
        let client = redis.next();
        // A stream that never had the group (or does not exist) has nothing to destroy.
        if let Err(e) = client
            .xgroup_destroy::<i64, _, _>(keys.stream.as_str(), GROUP)
            .await
        {
            tracing::debug!(stream = %keys.stream, error = %e, "no projector group to destroy");
        }
        let start = last.map_or_else(|| "0-0".to_string(), |id| id.to_string());
        let _: () = client
            .xgroup_create(keys.stream.as_str(), GROUP, start.as_str(), true)
            .await?;
    }
    Ok(report)
}

/// Deletes every projection key: the fixed ones and the top lists that can still be alive.
async fn reset(redis: &Client, parts: &[PartitionKeys], now_us: i64) -> Result<(), ProjectorError> {
    let now = minute_of(now_us);
    for keys in parts {
        let mut doomed: Vec<String> = keys.fixed().iter().map(|k| k.to_string()).collect();
        for minute in now - TOP_MINUTES - 1..=now + 1 {
            doomed.push(keys.top_clients(minute));
            doomed.push(keys.top_numbers(minute));
        }
        let _: i64 = redis.del(doomed).await?;
    }
    Ok(())
}

/// Every decodable event on the streams up to their newest entry at the first read, partition
/// by partition in stream order. Undecodable entries are skipped (the group dead-letters them).
pub fn stream_source(
    redis: Pool,
    layout: Layout,
) -> impl Stream<Item = Result<(String, Event), ProjectorError>> {
    struct Cursor {
        redis: Pool,
        streams: Vec<String>,
        partition: usize,
        after: Option<String>,
        end: Option<String>,
        buffer: VecDeque<(String, Event)>,
    }
    let cursor = Cursor {
        redis,
        streams: layout.streams(),
        partition: 0,
        after: None,
        end: None,
        buffer: VecDeque::new(),
    };
    futures::stream::try_unfold(cursor, |mut c| async move {
        loop {
            if let Some(item) = c.buffer.pop_front() {
                return Ok(Some((item, c)));
            }
            let Some(stream) = c.streams.get(c.partition).cloned() else {
                return Ok(None);
            };
            let client = c.redis.next();
            let end = match &c.end {
                Some(end) => end.clone(),
                None => {
                    let newest: Vec<(String, Vec<(String, Bytes)>)> =
                        client.xrevrange(stream.as_str(), "+", "-", Some(1)).await?;
                    let end = newest.into_iter().next().map(|(id, _)| id);
                    let Some(end) = end else {
                        c.partition += 1;
                        continue;
                    };
                    c.end = Some(end.clone());
                    end
                }
            };
            let start = c
                .after
                .as_ref()
                .map_or_else(|| "-".to_string(), |id| format!("({id}"));
            let page: Vec<(String, std::collections::HashMap<String, Bytes>)> = client
                .xrange(stream.as_str(), start.as_str(), end.as_str(), Some(1_000))
                .await?;
            if page.is_empty() {
                c.partition += 1;
                c.after = None;
                c.end = None;
                continue;
            }
            for (id, fields) in page {
                c.after = Some(id.clone());
                if let Some(event) = fields
                    .get(codec::EVENT_FIELD)
                    .and_then(|raw| codec::decode(raw).ok())
                {
                    c.buffer.push_back((id, event));
                }
            }
        }
    })
}
