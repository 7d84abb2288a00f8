//! `Archiver`: the worker loop. `run_until_stopped` waits for the interval (or a backlog),
//! then `drain`s, which repeats `try_process_batch` until nothing is left. One batch:
//!
//! 1. take entries of one partition: the batch still in hand after a Postgres failure, else
//!    this consumer's own pending entries (once, on start), else entries abandoned by dead
//!    consumers (XAUTOCLAIM, periodically), else new entries;
//! 2. decode them; what cannot be archived becomes a dead letter;
//! 3. insert the rows in one transaction (`ON CONFLICT (id) DO NOTHING`) and COMMIT;
//! 4. write the dead letters and XACK the whole batch, atomically;
//! 5. trim the stream below what every group still needs, and refresh the metrics.
//!
//! A crash before 4 re-delivers the batch (the insert then skips what it already has); a
//! Postgres failure at 3 keeps the batch in memory and pending in Redis, and retries it.

use std::time::{Duration, Instant};

use fred::clients::{Client, Pool};
use fred::interfaces::ClientLike;
use limiter::Layout;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{ArchiverConfig, FaultPoint};
use crate::entry::{Row, StreamEntry};
use crate::error::ArchiverError;
use crate::metrics as m;
use crate::store;
use crate::streams::{self, DeadLetter, StreamState};

/// What one step did. "Nothing to do" is a value, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new, nothing pending, nothing to claim.
    Idle,
    /// One batch committed and acked.
    Archived {
        partition: u16,
        /// Entries settled (archived or dead-lettered) and acked.
        entries: usize,
        /// Rows new to Postgres (redelivered rows are not counted).
        inserted: u64,
        dead_lettered: usize,
    },
}

/// Totals of one `drain`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub batches: usize,
    pub entries: usize,
    pub inserted: u64,
    pub dead_lettered: usize,
}

/// Where the entries of a batch came from; entries that were delivered before are checked
/// against `max_deliveries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    New,
    OwnPending,
    Claimed,
}

/// Entries of one partition on their way to Postgres.
#[derive(Debug)]
struct Batch {
    partition: u16,
    rows: Vec<Row>,
    /// The entry each row was decoded from, index for index: a row Postgres refuses goes to
    /// the dead letters with its original payload.
    sources: Vec<StreamEntry>,
    dead: Vec<DeadLetter>,
    /// Every entry id of the batch, in stream order: all of them are acked together.
    ids: Vec<String>,
    read_at: Instant,
    /// The read returned as many entries as asked: more are probably waiting.
    full: bool,
}

#[derive(Debug)]
struct State {
    groups_ready: bool,
    /// Per partition: where the re-read of this consumer's own pending entries stands
    /// (`None` once done). All `None` after the first pass since start.
    own_pending: Vec<Option<String>>,
    /// Per partition: the XAUTOCLAIM cursor of the claim pass under way (`None`: done).
    claim_cursor: Vec<Option<String>>,
    next_claim: Instant,
    in_hand: Option<Batch>,
    /// New entries read while the previous batch was being inserted (pending on this consumer).
    prefetched: Option<Batch>,
    /// Partition to read new entries from first, rotated so none starves.
    next_partition: usize,
    streams: Vec<StreamState>,
}

/// Copies the event streams into Postgres. Any number of archivers may run at once: the
/// consumer group shares the entries among them.
pub struct Archiver {
    redis: Pool,
    pg: PgPool,
    layout: Layout,
    config: ArchiverConfig,
    state: Mutex<State>,
}

impl Archiver {
    pub fn new(redis: Pool, pg: PgPool, layout: Layout, config: ArchiverConfig) -> Self {
        let partitions = usize::from(layout.partitions());
        let state = State {
            groups_ready: false,
            own_pending: vec![Some("0".to_owned()); partitions],
            claim_cursor: vec![None; partitions],
            next_claim: Instant::now(),
            in_hand: None,
            prefetched: None,
            next_partition: 0,
            streams: vec![StreamState::default(); partitions],
        };
        Self {
            redis,
            pg,
            layout,
            config,
            state: Mutex::new(state),
        }
    }

    pub fn config(&self) -> &ArchiverConfig {
        &self.config
    }

    /// Archives every `interval`, earlier when the backlog passes `backlog_threshold`, until
    /// `shutdown`. A batch under way is finished; a batch waiting for Postgres is handed back
    /// (it stays pending in Redis and is re-read or claimed by the next archiver).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), ArchiverError> {
        let mut next_drain = Instant::now();
        loop {
            // Wait for the interval, a backlog, or shutdown.
            loop {
                let now = Instant::now();
                if now >= next_drain {
                    break;
                }
                match self.measure().await {
                    Ok(backlog) if backlog >= self.config.backlog_threshold => {
                        tracing::info!(backlog, "archive backlog over threshold, draining early");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "measuring the archive lag failed"),
                }
                let nap = self.config.backlog_check.min(next_drain - now);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(nap) => {}
                }
            }
            next_drain = Instant::now() + self.config.interval;
            if !self.drain_until_idle(&shutdown).await {
                return Ok(());
            }
        }
    }

    /// Steps until idle, retrying failures with backoff. False when shutdown came first.
    async fn drain_until_idle(&self, shutdown: &CancellationToken) -> bool {
        self.state.lock().await.next_claim = Instant::now();
        let mut backoff = self.config.retry_min;
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            let step = self.try_process_batch();
            tokio::pin!(step);
            let result = loop {
                tokio::select! {
                    result = &mut step => break result,
                    // Postgres can hang a batch for its whole timeout; the lag must still show.
                    () = tokio::time::sleep(self.config.backlog_check) => {
                        let _ = self.measure().await;
                    }
                }
            };
            match result {
                Ok(Outcome::Idle) => return true,
                Ok(Outcome::Archived { .. }) => backoff = self.config.retry_min,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "archive batch failed; retrying");
                    // Keep the lag metrics moving while the archive is stuck.
                    let _ = self.measure().await;
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Archives everything there is now (new entries, this consumer's own pending entries and
    /// abandoned ones old enough to claim), then returns. Stops at the first error; the batch
    /// that failed stays in hand for the next call.
    pub async fn drain(&self) -> Result<DrainReport, ArchiverError> {
        self.state.lock().await.next_claim = Instant::now();
        let mut report = DrainReport::default();
        loop {
            match self.try_process_batch().await? {
                Outcome::Idle => break,
                Outcome::Archived {
                    entries,
                    inserted,
                    dead_lettered,
                    ..
                } => {
                    report.batches += 1;
                    report.entries += entries;
                    report.inserted += inserted;
                    report.dead_lettered += dead_lettered;
                }
            }
        }
        self.measure().await?;
        Ok(report)
    }

    /// One step: archive one batch, or report that there is nothing to do.
    pub async fn try_process_batch(&self) -> Result<Outcome, ArchiverError> {
        let mut state = self.state.lock().await;
        let redis = self.redis.next();
        if !redis.is_connected() {
            return Err(ArchiverError::RedisDown);
        }
        if !state.groups_ready {
            for stream in self.layout.streams() {
                streams::ensure_group(redis, &stream).await?;
            }
            state.groups_ready = true;
        }
        let batch = match state.in_hand.take().or_else(|| state.prefetched.take()) {
            Some(batch) => batch,
            None => match self.next_batch(&mut state, redis).await {
                Ok(Some(batch)) => batch,
                Ok(None) => return Ok(Outcome::Idle),
                Err(e) => {
                    if e.to_string().contains("NOGROUP") {
                        // The stream was deleted under us: recreate the group next time.
                        state.groups_ready = false;
                    }
                    return Err(e);
                }
            },
        };
        // While Postgres inserts a full batch, read the next one from Redis: the two overlap,
        // which is most of the archive's throughput. The prefetched entries are pending on this
        // consumer like any other, so a crash loses nothing.
        let prefetch = batch.full && state.in_hand.is_none() && state.prefetched.is_none();
        let next_partition = state.next_partition;
        let (archived, prefetched) = if prefetch {
            tokio::join!(
                self.archive(redis, batch),
                self.read_new(redis, next_partition)
            )
        } else {
            (self.archive(redis, batch).await, Ok(None))
        };
        match prefetched {
            Ok(Some(next)) => {
                state.next_partition = usize::from(next.partition) + 1;
                state.prefetched = Some(next);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "prefetching the next batch failed"),
        }
        match archived {
            Ok((outcome, measured)) => {
                if let (Outcome::Archived { partition, .. }, Some(measured)) = (outcome, measured) {
                    state.streams[usize::from(partition)] = measured;
                    publish(&state.streams);
                }
                Ok(outcome)
            }
            Err((e, batch)) => {
                // Keep the batches: renew their lease so no other archiver claims them meanwhile.
                for held in batch.iter().chain(state.prefetched.as_ref()) {
                    let stream = self.layout.stream(held.partition);
                    let _ = streams::renew(redis, &stream, &self.config.consumer, held.ids.clone())
                        .await;
                }
                state.in_hand = batch;
                Err(e)
            }
        }
    }

    /// Picks the next batch: own pending first, then claims when due, then new entries.
    async fn next_batch(
        &self,
        state: &mut State,
        redis: &Client,
    ) -> Result<Option<Batch>, ArchiverError> {
        let count = self.config.batch_size.max(1);
        let consumer = self.config.consumer.as_str();

        for p in 0..self.layout.partitions() {
            let Some(after) = state.own_pending[usize::from(p)].clone() else {
                continue;
            };
            let stream = self.layout.stream(p);
            let entries = streams::read(redis, p, &stream, consumer, &after, count).await?;
            match entries.last() {
                Some(last) => {
                    state.own_pending[usize::from(p)] = Some(last.id.clone());
                    tracing::info!(
                        partition = p,
                        entries = entries.len(),
                        "re-reading own pending entries"
                    );
                    return self
                        .batch(redis, p, entries, Source::OwnPending)
                        .await
                        .map(Some);
                }
                None => state.own_pending[usize::from(p)] = None,
            }
        }

        if Instant::now() >= state.next_claim {
            if state.claim_cursor.iter().all(Option::is_none) {
                state.claim_cursor = vec![Some("0-0".to_owned()); state.claim_cursor.len()];
            }
            for p in 0..self.layout.partitions() {
                let stream = self.layout.stream(p);
                while let Some(cursor) = state.claim_cursor[usize::from(p)].clone() {
                    let (next, entries) = streams::autoclaim(
                        redis,
                        p,
                        &stream,
                        consumer,
                        self.config.claim_idle,
                        &cursor,
                        count,
                    )
                    .await?;
                    state.claim_cursor[usize::from(p)] = (next != "0-0").then_some(next);
                    if !entries.is_empty() {
                        tracing::info!(
                            partition = p,
                            entries = entries.len(),
                            "claimed entries of an idle consumer"
                        );
                        return self
                            .batch(redis, p, entries, Source::Claimed)
                            .await
                            .map(Some);
                    }
                }
                let forgotten = streams::forget_idle_consumers(
                    redis,
                    &stream,
                    consumer,
                    self.config.forget_idle,
                )
                .await?;
                if forgotten > 0 {
                    tracing::info!(partition = p, forgotten, "removed idle consumers");
                }
            }
            // Claiming more often than entries can become claimable is wasted work.
            state.next_claim =
                Instant::now() + (self.config.claim_idle / 2).max(Duration::from_secs(1));
        }

        let batch = self.read_new(redis, state.next_partition).await?;
        if let Some(batch) = &batch {
            state.next_partition = usize::from(batch.partition) + 1;
        }
        Ok(batch)
    }

    /// New entries from the first partition that has any, starting at `first`.
    async fn read_new(&self, redis: &Client, first: usize) -> Result<Option<Batch>, ArchiverError> {
        let partitions = self.layout.partitions();
        for i in 0..partitions {
            let p = u16::try_from((first + usize::from(i)) % usize::from(partitions)).unwrap_or(0);
            let stream = self.layout.stream(p);
            let entries = streams::read(
                redis,
                p,
                &stream,
                &self.config.consumer,
                ">",
                self.config.batch_size.max(1),
            )
            .await?;
            if !entries.is_empty() {
                return self.batch(redis, p, entries, Source::New).await.map(Some);
            }
        }
        Ok(None)
    }

    /// Decodes entries into rows and dead letters.
    async fn batch(
        &self,
        redis: &Client,
        partition: u16,
        entries: Vec<StreamEntry>,
        source: Source,
    ) -> Result<Batch, ArchiverError> {
        let read_at = Instant::now();
        let full = entries.len() >= self.config.batch_size.max(1);
        let deliveries = if source == Source::New {
            Default::default()
        } else {
            let stream = self.layout.stream(partition);
            streams::deliveries(redis, &stream, &self.config.consumer, &entries).await?
        };
        let mut batch = Batch {
            partition,
            rows: Vec::with_capacity(entries.len()),
            sources: Vec::with_capacity(entries.len()),
            dead: Vec::new(),
            ids: entries.iter().map(|e| e.id.clone()).collect(),
            read_at,
            full,
        };
        for entry in entries {
            let delivered = deliveries.get(&entry.id).copied().unwrap_or(1);
            if delivered > self.config.max_deliveries {
                let reason = format!("delivered {delivered} times without being archived");
                batch.dead.push(DeadLetter { entry, reason });
                continue;
            }
            match entry.to_row() {
                Ok(row) => {
                    batch.rows.push(row);
                    batch.sources.push(entry);
                }
                Err(reason) => batch.dead.push(DeadLetter { entry, reason }),
            }
        }
        Ok(batch)
    }

    /// Inserts, settles and trims one batch, returning the stream as measured after trimming.
    /// On a Postgres outage the batch comes back with the error, to be kept in hand.
    async fn archive(
        &self,
        redis: &Client,
        mut batch: Batch,
    ) -> Result<(Outcome, Option<StreamState>), (ArchiverError, Option<Batch>)> {
        let p = batch.partition;
        let stream = self.layout.stream(p);
        self.pause(FaultPoint::AfterRead).await;

        let insert_started = Instant::now();
        let inserted = match self.insert(&mut batch).await {
            Ok(inserted) => inserted,
            Err(e) => return Err((e, Some(batch))),
        };
        metrics::histogram!(m::INSERT_DURATION).record(insert_started.elapsed().as_secs_f64());
        self.pause(FaultPoint::AfterInsert).await;

        let ids: Vec<&str> = batch.ids.iter().map(String::as_str).collect();
        // A failed ack leaves the entries pending: they are claimed later and their rows,
        // already committed, are skipped then. Nothing to hold on to.
        if let Err(e) = streams::settle(
            redis,
            &stream,
            &self.layout.dead_letters(p),
            &batch.dead,
            &ids,
        )
        .await
        {
            return Err((e, None));
        }
        for dead in &batch.dead {
            tracing::warn!(partition = p, stream_id = %dead.entry.id, reason = %dead.reason, "entry dead-lettered");
        }

        metrics::counter!(m::EVENTS_ARCHIVED).increment(inserted);
        metrics::counter!(m::DEAD_LETTERS, "group" => crate::GROUP)
            .increment(batch.dead.len() as u64);
        metrics::histogram!(m::BATCH_SIZE).record(batch.ids.len() as f64);
        metrics::histogram!(m::BATCH_DURATION).record(batch.read_at.elapsed().as_secs_f64());

        let measured = match streams::maintain(redis, &stream, true).await {
            Ok(measured) => Some(measured),
            // The batch is archived either way; the next batch trims.
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "trimming failed");
                None
            }
        };
        let outcome = Outcome::Archived {
            partition: p,
            entries: batch.ids.len(),
            inserted,
            dead_lettered: batch.dead.len(),
        };
        Ok((outcome, measured))
    }

    /// One transaction for the whole batch; if Postgres refuses the data itself, row by row,
    /// moving the rows it refuses to the dead letters.
    async fn insert(&self, batch: &mut Batch) -> Result<u64, ArchiverError> {
        match store::insert_rows(&self.pg, &batch.rows).await {
            Ok(inserted) => return Ok(inserted),
            Err(e) => {
                metrics::counter!(m::POSTGRES_ERRORS).increment(1);
                if e.is_transient() {
                    return Err(e);
                }
                tracing::warn!(error = %e, "postgres refused a batch; inserting it row by row");
            }
        }
        let mut inserted = 0;
        let mut kept = Vec::with_capacity(batch.rows.len());
        let mut kept_sources = Vec::with_capacity(batch.rows.len());
        let mut pairs = std::mem::take(&mut batch.rows)
            .into_iter()
            .zip(std::mem::take(&mut batch.sources));
        while let Some((row, source)) = pairs.next() {
            match store::insert_rows(&self.pg, std::slice::from_ref(&row)).await {
                Ok(n) => {
                    inserted += n;
                    kept.push(row);
                    kept_sources.push(source);
                }
                Err(e) if e.is_transient() => {
                    metrics::counter!(m::POSTGRES_ERRORS).increment(1);
                    // The whole batch stays in hand, the rows not tried yet included: its ids
                    // are acked together once it is in.
                    kept.push(row);
                    kept_sources.push(source);
                    for (row, source) in pairs {
                        kept.push(row);
                        kept_sources.push(source);
                    }
                    batch.rows = kept;
                    batch.sources = kept_sources;
                    return Err(e);
                }
                Err(e) => batch.dead.push(DeadLetter {
                    entry: source,
                    reason: format!("refused by postgres: {e}"),
                }),
            }
        }
        batch.rows = kept;
        batch.sources = kept_sources;
        Ok(inserted)
    }

    /// Measures every stream (without trimming), publishes the lag and length metrics, and
    /// returns the total number of entries not yet archived.
    pub async fn measure(&self) -> Result<u64, ArchiverError> {
        let redis = self.redis.next();
        if !redis.is_connected() {
            return Err(ArchiverError::RedisDown);
        }
        let mut measured = Vec::with_capacity(usize::from(self.layout.partitions()));
        for stream in self.layout.streams() {
            measured.push(streams::maintain(redis, &stream, false).await?);
        }
        let backlog = measured.iter().map(StreamState::lag).sum();
        publish(&measured);
        // A batch in progress holds the state (and will store its own measurement): never wait
        // for it, or a batch stuck on Postgres would freeze the lag metrics.
        if let Ok(mut state) = self.state.try_lock() {
            state.streams = measured;
        }
        Ok(backlog)
    }

    async fn pause(&self, point: FaultPoint) {
        if let Some(pause) = self.config.pause.filter(|p| p.point == point) {
            tracing::warn!(?point, duration = ?pause.duration, "fault injection: pausing");
            tokio::time::sleep(pause.duration).await;
        }
    }
}

/// Publishes the gauges from the last measurement of every stream; the totals span
/// partitions, so all are republished whichever changed.
fn publish(streams: &[StreamState]) {
    let lag: u64 = streams.iter().map(StreamState::lag).sum();
    let oldest = streams
        .iter()
        .map(|s| s.oldest_age)
        .max()
        .unwrap_or_default();
    metrics::gauge!(m::LAG_ENTRIES).set(lag as f64);
    metrics::gauge!(m::LAG_SECONDS).set(oldest.as_secs_f64());
    for (p, s) in streams.iter().enumerate() {
        metrics::gauge!(m::STREAM_LENGTH, "partition" => p.to_string()).set(s.length as f64);
    }
}
