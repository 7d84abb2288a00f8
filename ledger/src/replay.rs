//! The replay reader: every event in order from the Postgres archive and the stream's hot tail
//! together, each exactly once, optionally following the stream live.
//!
//! Order is per partition by stream id (one client's decisions are all on one partition, so
//! that is the order the policy saw), and across partitions by decision time, then partition,
//! then stream id. Each partition is a merge of two sorted sources:
//!
//! - the archive, read in keyset pages in stream-id order (the `sms_events_stream_order`
//!   index), one page fetched ahead while the caller works through the current one;
//! - the stream, read in XRANGE pages.
//!
//! An entry both archived and still on the stream is passed on once (the archived row, the
//! durable record; [`Replayed::differs_from_stream`] says if the two disagree). Entries that
//! are pending but not yet archived below the newest archived id (claimed late by another
//! archiver) still come out in their place, because the merge never skips ahead on one source.
//! No entry falls between the two: the stream is trimmed only below what the archiver has
//! committed, and every stream page also reports where the stream starts now; when it starts
//! past where the reader stood, the archive is asked again from the reader's position.
//!
//! Memory is bounded by the page sizes, never by the range: nothing is collected.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
pub use eventlog::StreamId;
use eventlog::{Decoded, RawEntry, Script, parse_xread, read_groups, read_waiting};
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::Value;
use futures::Stream;
use limiter::event::SCHEMA_VERSION;
use limiter::{Event, Layout, Outcome, StoredForm};
use sqlx::{PgPool, Row as _};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::LedgerError;

static PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("replay_page.lua")));

/// Rows per archive page (one query each).
pub const ARCHIVE_PAGE: usize = 5_000;
/// Entries per stream page.
pub const STREAM_PAGE: usize = 1_000;
/// How long one blocking read waits for new entries when following.
const FOLLOW_BLOCK: Duration = Duration::from_millis(1_000);
/// How often `--follow` looks for new entries on Redis Cluster, where it cannot block.
const CLUSTER_POLL: Duration = Duration::from_millis(100);
/// While following, a partition that had nothing is asked again after this long even when
/// others keep the reader busy, so a busy partition cannot starve a quiet one.
const IDLE_RECHECK: Duration = Duration::from_millis(200);

/// Where a replayed event was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Archive,
    Stream,
}

/// One event as replay passes it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub partition: u16,
    pub stream_id: StreamId,
    pub event: Event,
    pub origin: Origin,
    /// False when the archived row's `at` column disagrees with its `at_us` (always true for
    /// events read from the stream, which has only `at_us`).
    pub at_matches: bool,
    /// True when the event was both archived and still on the stream, and the two differ.
    pub differs_from_stream: bool,
}

impl Replayed {
    /// The cross-partition order key: decision time, partition, stream id.
    fn order(&self) -> (i64, u16, StreamId) {
        (self.event.at_us, self.partition, self.stream_id)
    }
}

/// Which events to pass on. Every field narrows; `None` is "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Decision time from (inclusive), µs since the epoch.
    pub since_us: Option<i64>,
    /// Decision time until (exclusive), µs since the epoch.
    pub until_us: Option<i64>,
    /// Destination number, E.164 as recorded (compared exactly).
    pub to: Option<String>,
    pub ip: Option<IpAddr>,
    pub outcome: Option<Outcome>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        self.since_us.is_none_or(|s| event.at_us >= s)
            && self.until_us.is_none_or(|u| event.at_us < u)
            && self.to.as_ref().is_none_or(|to| *to == event.to)
            && self.ip.is_none_or(|ip| ip == event.ip)
            && self.outcome.is_none_or(|o| o == event.outcome)
    }
}

/// How to replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub filter: Filter,
    /// Keep reading new entries as they are written (ignored when `filter.until_us` is set).
    pub follow: bool,
}

/// The merged reader over every partition. Call [`Replay::next`] until it returns `None`
/// (never, when following), or turn it into a `Stream` with [`Replay::into_stream`].
pub struct Replay {
    redis: Pool,
    parts: Vec<PartitionReader>,
    heads: Vec<Option<Replayed>>,
    /// Per partition: finished (not following), or when it last had nothing (following).
    quiet: Vec<Option<Instant>>,
    follow: bool,
    filter: Filter,
    /// Items passed on, and undecodable stream entries skipped.
    pub passed: u64,
    pub skipped: u64,
}

impl Replay {
    pub fn new(redis: Pool, pg: PgPool, layout: &Layout, options: ReplayOptions) -> Self {
        let parts: Vec<_> = (0..layout.partitions())
            .map(|p| PartitionReader::new(p, layout.stream(p), pg.clone(), &options.filter))
            .collect();
        let n = parts.len();
        Self {
            redis,
            parts,
            heads: vec![None; n],
            quiet: vec![None; n],
            follow: options.follow && options.filter.until_us.is_none(),
            filter: options.filter,
            passed: 0,
            skipped: 0,
        }
    }

    /// The next event in order, `None` at the end (not following).
    pub async fn next(&mut self) -> Result<Option<Replayed>, LedgerError> {
        loop {
            let redis = self.redis.next().clone();
            if !redis.is_connected() {
                return Err(LedgerError::RedisDown);
            }
            for p in 0..self.parts.len() {
                if self.heads[p].is_some() {
                    continue;
                }
                if let Some(since) = self.quiet[p]
                    && (!self.follow || since.elapsed() < IDLE_RECHECK)
                {
                    continue;
                }
                match self.parts[p].next(&redis, &self.filter).await? {
                    Some(item) => {
                        self.heads[p] = Some(item);
                        self.quiet[p] = None;
                    }
                    None => self.quiet[p] = Some(Instant::now()),
                }
            }
            self.skipped = self.parts.iter().map(|p| p.skipped).sum();
            let first = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(p, h)| h.as_ref().map(|h| (h.order(), p)))
                .min()
                .map(|(_, p)| p);
            if let Some(p) = first {
                self.passed += 1;
                return Ok(self.heads[p].take());
            }
            if !self.follow {
                return Ok(None);
            }
            self.wait_for_new(&redis).await?;
            // Something may have arrived anywhere: ask every partition again.
            self.quiet.iter_mut().for_each(|q| *q = None);
        }
    }

    /// Waits until an entry newer than each partition's position arrives, or a while passes:
    /// one blocking XREAD on one Redis, polling XREADs on a cluster (see `read_waiting`).
    async fn wait_for_new(&self, redis: &Client) -> Result<(), LedgerError> {
        let streams: Vec<String> = self.parts.iter().map(|p| p.stream.clone()).collect();
        let groups = read_groups(redis.is_clustered(), &streams);
        let positions: Vec<String> = self
            .parts
            .iter()
            .map(|p| p.position().to_string())
            .collect();
        let read = |group: &[u16], block: Option<Duration>| {
            let keys: Vec<&str> = group
                .iter()
                .map(|p| streams[usize::from(*p)].as_str())
                .collect();
            let ids: Vec<&str> = group
                .iter()
                .map(|p| positions[usize::from(*p)].as_str())
                .collect();
            let block = block.map(|b| u64::try_from(b.as_millis()).unwrap_or(1_000));
            async move {
                let reply: Value = redis.xread(Some(1), block, keys, ids).await?;
                let mut read = parse_xread(reply)?;
                read.retain(|(_, entries): &(String, Vec<RawEntry>)| !entries.is_empty());
                Ok::<_, eventlog::LogError>(read)
            }
        };
        read_waiting(&groups, FOLLOW_BLOCK, CLUSTER_POLL, read).await?;
        Ok(())
    }

    /// The reader as a `Stream` of events.
    pub fn into_stream(self) -> impl Stream<Item = Result<Replayed, LedgerError>> {
        futures::stream::try_unfold(self, |mut replay| async move {
            Ok(replay.next().await?.map(|item| (item, replay)))
        })
    }
}

/// One partition: the archive and the stream merged by stream id.
struct PartitionReader {
    partition: u16,
    stream: String,
    pg: PgPool,
    /// The filter as far as SQL applies it (the same as the caller's).
    sql: ArchiveQuery,
    /// The newest id passed on or filtered out: nothing at or below it is passed on again.
    last: Option<StreamId>,
    archive: VecDeque<Replayed>,
    archive_started: bool,
    archive_done: bool,
    /// Where the next archive page starts (exclusive).
    archive_after: StreamId,
    archive_ahead: Option<JoinHandle<Result<Vec<Replayed>, LedgerError>>>,
    stream_buf: VecDeque<Replayed>,
    /// The newest id read from the stream.
    stream_after: Option<StreamId>,
    /// The last page was short: the stream had nothing more at that moment.
    stream_drained: bool,
    skipped: u64,
}

impl PartitionReader {
    fn new(partition: u16, stream: String, pg: PgPool, filter: &Filter) -> Self {
        Self {
            partition,
            stream,
            pg,
            sql: ArchiveQuery::new(partition, filter),
            last: None,
            archive: VecDeque::new(),
            archive_started: false,
            archive_done: false,
            archive_after: StreamId::default(),
            archive_ahead: None,
            stream_buf: VecDeque::new(),
            stream_after: None,
            stream_drained: false,
            skipped: 0,
        }
    }

    /// Where a blocking read for new entries starts.
    fn position(&self) -> StreamId {
        self.last.max(self.stream_after).unwrap_or_default()
    }

    /// The next event of this partition passing `filter`, `None` when both sources have
    /// nothing more right now (a later call looks again).
    async fn next(
        &mut self,
        redis: &Client,
        filter: &Filter,
    ) -> Result<Option<Replayed>, LedgerError> {
        loop {
            if self.stream_buf.is_empty() && !self.stream_drained {
                self.read_stream_page(redis).await?;
            }
            if !self.archive_started {
                // Only after the first stream page: anything trimmed before it was committed
                // before the archive is first asked, so the archive has it.
                self.restart_archive();
            }
            if self.archive.is_empty() && !self.archive_done {
                self.read_archive_page().await?;
            }
            let from_archive = match (self.archive.front(), self.stream_buf.front()) {
                (None, None) => {
                    // Look again next time.
                    self.stream_drained = false;
                    return Ok(None);
                }
                (Some(a), Some(s)) => a.stream_id <= s.stream_id,
                (Some(_), None) => {
                    // The stream may have more below this row: only when it is drained (or
                    // the row is below what the stream holds) is the row next.
                    if !self.stream_drained {
                        continue;
                    }
                    true
                }
                (None, Some(_)) => {
                    if !self.archive_done {
                        continue;
                    }
                    false
                }
            };
            let item = if from_archive {
                let mut item = self.archive.pop_front().ok_or_else(unreachable_empty)?;
                if self
                    .stream_buf
                    .front()
                    .is_some_and(|s| s.stream_id == item.stream_id)
                {
                    let on_stream = self.stream_buf.pop_front().ok_or_else(unreachable_empty)?;
                    item.differs_from_stream = on_stream.event != item.event;
                }
                item
            } else {
                self.stream_buf.pop_front().ok_or_else(unreachable_empty)?
            };
            if self.last.is_some_and(|last| item.stream_id <= last) {
                continue;
            }
            self.last = Some(item.stream_id);
            if filter.matches(&item.event) {
                return Ok(Some(item));
            }
        }
    }

    async fn read_stream_page(&mut self, redis: &Client) -> Result<(), LedgerError> {
        let start = self
            .stream_after
            .map_or_else(|| "-".to_owned(), |after| format!("({after}"));
        let reply: Value = PAGE
            .run(
                redis,
                vec![self.stream.as_str()],
                vec![start, STREAM_PAGE.to_string()],
            )
            .await?;
        let Value::Array(mut parts) = reply else {
            return Err(LedgerError::Reply("replay page: not an array".into()));
        };
        if parts.len() != 2 {
            return Err(LedgerError::Reply("replay page: not two parts".into()));
        }
        let page = parts.swap_remove(1);
        let first = parts[0].as_string().unwrap_or_default();
        if !first.is_empty() && self.archive_started {
            let first: StreamId = first.parse()?;
            if first > self.stream_after.unwrap_or_default() {
                // Entries we never saw on the stream may have been archived and trimmed since
                // the archive was asked: ask it again from where we stand.
                self.restart_archive();
            }
        }
        let entries: Vec<RawEntry> = parse_xread(page)?
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect();
        self.stream_drained = entries.len() < STREAM_PAGE;
        for raw in entries {
            let id = raw.id;
            self.stream_after = Some(id);
            match Decoded::new(self.partition, raw, 1) {
                Decoded::Event(entry) => {
                    // Replay yields decisions; delivery status changes are not re-derived.
                    if let limiter::delivery::Record::Decision(event) = entry.record {
                        self.stream_buf.push_back(Replayed {
                            partition: self.partition,
                            stream_id: id,
                            event,
                            origin: Origin::Stream,
                            at_matches: true,
                            differs_from_stream: false,
                        })
                    }
                }
                // XRANGE never answers nil for an entry; only a pending read could.
                Decoded::Gone { .. } => {}
                Decoded::Undecodable { reason, .. } => {
                    // The archiver dead-letters it; replay has nothing to pass on.
                    tracing::warn!(partition = self.partition, id = %id, %reason, "skipping an undecodable stream entry");
                    self.skipped += 1;
                }
            }
        }
        Ok(())
    }

    /// Forgets what was read from the archive and reads it again after `last`.
    fn restart_archive(&mut self) {
        if let Some(ahead) = self.archive_ahead.take() {
            ahead.abort();
        }
        self.archive.clear();
        self.archive_started = true;
        self.archive_done = false;
        self.archive_after = self.last.unwrap_or_default();
    }

    async fn read_archive_page(&mut self) -> Result<(), LedgerError> {
        let ahead = match self.archive_ahead.take() {
            Some(ahead) => ahead,
            None => self.spawn_page(self.archive_after),
        };
        let rows = match ahead.await {
            Ok(rows) => rows?,
            Err(e) => return Err(LedgerError::Reply(format!("archive reader task: {e}"))),
        };
        self.archive_done = rows.len() < ARCHIVE_PAGE;
        if let Some(last) = rows.last() {
            self.archive_after = last.stream_id;
        }
        if !self.archive_done {
            self.archive_ahead = Some(self.spawn_page(self.archive_after));
        }
        self.archive.extend(rows);
        Ok(())
    }

    fn spawn_page(&self, after: StreamId) -> JoinHandle<Result<Vec<Replayed>, LedgerError>> {
        let (pg, sql) = (self.pg.clone(), self.sql.clone());
        tokio::spawn(async move { sql.page(&pg, after).await })
    }
}

fn unreachable_empty() -> LedgerError {
    LedgerError::Reply("replay: a source emptied between peek and take".into())
}

/// The archive page query of one partition with the filter pushed down (only the conditions
/// given, so the planner can use the number and IP indexes).
#[derive(Clone, Debug)]
struct ArchiveQuery {
    partition: i16,
    sql: String,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    to: Option<String>,
    ip: Option<IpAddr>,
    outcome: Option<&'static str>,
}

/// The columns every archive read decodes, in [`decode_row`]'s order.
pub(crate) const EVENT_COLUMNS: &str = r#"stream_id, id, at_us, ip, "to", "from", message, segments, outcome, violated, retry_after, policy,
       at = timestamptz 'epoch' + at_us * interval '1 microsecond' AS at_matches, partition,
       shadow_violated, reason, country, client, message_stored, api_client, ip_unattributed"#;

const STREAM_MS: &str = "split_part(stream_id, '-', 1)::bigint";
const STREAM_SEQ: &str = "split_part(stream_id, '-', 2)::bigint";

impl ArchiveQuery {
    fn new(partition: u16, filter: &Filter) -> Self {
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM sms_events WHERE partition = $1 \
             AND ({STREAM_MS}, {STREAM_SEQ}) > ($2, $3)"
        );
        let mut n = 3;
        let mut param = |sql: &mut String, condition: &str| {
            n += 1;
            sql.push_str(&condition.replace('?', &format!("${n}")));
        };
        let micros = |us: Option<i64>| us.and_then(DateTime::from_timestamp_micros);
        let since = micros(filter.since_us);
        let until = micros(filter.until_us);
        if since.is_some() {
            param(&mut sql, " AND at >= ?");
        }
        if until.is_some() {
            param(&mut sql, " AND at < ?");
        }
        if filter.to.is_some() {
            param(&mut sql, r#" AND "to" = ?"#);
        }
        if filter.ip.is_some() {
            param(&mut sql, " AND ip = ?");
        }
        if filter.outcome.is_some() {
            param(&mut sql, " AND outcome = ?");
        }
        sql.push_str(&format!(
            " ORDER BY {STREAM_MS}, {STREAM_SEQ} LIMIT {ARCHIVE_PAGE}"
        ));
        Self {
            partition: i16::try_from(partition).unwrap_or(i16::MAX),
            sql,
            since,
            until,
            to: filter.to.clone(),
            ip: filter.ip,
            outcome: filter.outcome.map(Outcome::as_str),
        }
    }

    async fn page(&self, pg: &PgPool, after: StreamId) -> Result<Vec<Replayed>, LedgerError> {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()))
            .bind(self.partition)
            .bind(as_i64(after.ms))
            .bind(as_i64(after.seq));
        if let Some(since) = self.since {
            query = query.bind(since);
        }
        if let Some(until) = self.until {
            query = query.bind(until);
        }
        if let Some(to) = &self.to {
            query = query.bind(to.as_str());
        }
        if let Some(ip) = self.ip {
            query = query.bind(ip);
        }
        if let Some(outcome) = self.outcome {
            query = query.bind(outcome);
        }
        query.fetch_all(pg).await?.iter().map(decode_row).collect()
    }
}

/// An archive row (selected as [`EVENT_COLUMNS`]) as a replayed event.
pub(crate) fn decode_row(row: &sqlx::postgres::PgRow) -> Result<Replayed, LedgerError> {
    let bad = |what: &str| LedgerError::Reply(format!("archived row: {what} out of range"));
    let stream_id: StreamId = row.try_get::<&str, _>(0)?.parse()?;
    let outcome = match row.try_get::<&str, _>(8)? {
        "accepted" => Outcome::Accepted,
        "rejected" => Outcome::Rejected,
        "blocked" => Outcome::Blocked,
        other => return Err(bad(other)),
    };
    let event = Event {
        v: SCHEMA_VERSION,
        id: row.try_get::<Uuid, _>(1)?,
        at_us: row.try_get(2)?,
        ip: row.try_get::<IpAddr, _>(3)?,
        to: row.try_get(4)?,
        from: row.try_get(5)?,
        message: row.try_get(6)?,
        stored: row
            .try_get::<Option<&str>, _>(18)?
            .map(|s| StoredForm::parse(s).ok_or_else(|| bad("message_stored")))
            .transpose()?,
        segments: u32::try_from(row.try_get::<i32, _>(7)?).map_err(|_| bad("segments"))?,
        outcome,
        violated: row.try_get(9)?,
        retry_after: u64::try_from(row.try_get::<i64, _>(10)?).map_err(|_| bad("retry_after"))?,
        policy: row.try_get(11)?,
        shadow_violated: row.try_get(14)?,
        reason: row.try_get(15)?,
        country: row.try_get(16)?,
        client: row.try_get(17)?,
        api_client: row.try_get(19)?,
        ip_unattributed: row.try_get(20)?,
    };
    Ok(Replayed {
        partition: u16::try_from(row.try_get::<i16, _>(13)?).map_err(|_| bad("partition"))?,
        stream_id,
        event,
        origin: Origin::Archive,
        at_matches: row.try_get::<Option<bool>, _>(12)?.unwrap_or(false),
        differs_from_stream: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_query_binds_only_the_conditions_given() {
        let q = ArchiveQuery::new(
            2,
            &Filter {
                to: Some("+1".into()),
                outcome: Some(Outcome::Rejected),
                ..Filter::default()
            },
        );
        assert!(q.sql.contains(r#""to" = $4"#), "{}", q.sql);
        assert!(q.sql.contains("outcome = $5"), "{}", q.sql);
        assert!(!q.sql.contains("$6"));
        assert!(!q.sql.contains("at >="));
    }
}
