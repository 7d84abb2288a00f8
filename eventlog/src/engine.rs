//! The consumer-group engine: [`Consumer`] reads, claims, caps, dead-letters, acks, trims and
//! measures; a [`Role`] only applies. See the crate docs for the contract and an example.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::Value;
use futures::future::try_join_all;
use limiter::Layout;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::LogError;
use crate::dead::DeadLetter;
use crate::entry::{Decoded, Entry};
use crate::group::{From, Group, StreamState, is_missing_group};
use crate::id::StreamId;
use crate::reply::{self, RawEntry};

/// Errors a role's side effect may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A batch as a role receives it: decoded entries of one partition, in stream order.
#[derive(Clone, Debug)]
pub struct Batch {
    pub partition: u16,
    pub entries: Vec<Entry>,
}

/// How a role wants a batch it has applied settled.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    settled_by_role: bool,
    dead: Vec<(StreamId, u64, String, Bytes)>,
    keep: Vec<StreamId>,
    applied: u64,
}

impl Verdict {
    /// The role's side effect has committed: the engine acks every entry that is neither
    /// dead-lettered nor kept (the archiver after COMMIT, the dispatcher after the provider).
    pub fn ack_rest() -> Self {
        Self::default()
    }

    /// The role acknowledged the entries it applied itself, atomically with its effect (the
    /// projector's apply-and-ack script); the engine only settles the dead letters.
    pub fn settled_by_role() -> Self {
        Self {
            settled_by_role: true,
            ..Self::default()
        }
    }

    /// How many entries had an effect (rows inserted, stats counted, messages sent): reported
    /// in [`Outcome`], never interpreted.
    pub fn applied(mut self, n: u64) -> Self {
        self.applied = n;
        self
    }

    /// Sets `entry` aside: the engine writes it to the dead letters, payload intact, and acks it.
    pub fn dead_letter(&mut self, entry: &Entry, reason: impl Into<String>) {
        self.dead
            .push((entry.id, entry.deliveries, reason.into(), entry.raw.clone()));
    }

    /// Leaves `entry` pending, unacknowledged: it is delivered again after the claim idle time,
    /// and dead-lettered once its deliveries pass the cap.
    pub fn keep(&mut self, entry: &Entry) {
        self.keep.push(entry.id);
    }
}

/// Why a role could not apply a batch.
#[derive(Debug)]
pub enum ApplyError {
    /// A dependency is down: the engine keeps the batch in hand (its lease renewed, so nobody
    /// claims it) and retries the same batch with backoff.
    Outage(BoxError),
    /// The batch itself cannot be applied: the engine applies its entries one at a time; an
    /// entry that fails alone stays pending and is dead-lettered once it passes the cap.
    Poison(BoxError),
}

impl ApplyError {
    pub fn outage(e: impl Into<BoxError>) -> Self {
        Self::Outage(e.into())
    }

    pub fn poison(e: impl Into<BoxError>) -> Self {
        Self::Poison(e.into())
    }
}

/// What a consumer group does with the entries it reads.
pub trait Role: Send + Sync {
    /// The consumer group every process of this role joins.
    const GROUP: &'static str;

    /// Applies one batch and says how to settle it. Called again with the same batch after an
    /// [`ApplyError::Outage`], and with single entries after an [`ApplyError::Poison`], so it
    /// must be idempotent per entry (an entry may also be redelivered after a crash).
    fn apply(&self, batch: &Batch) -> impl Future<Output = Result<Verdict, ApplyError>> + Send;
}

/// How a consumer behaves. `ConsumerConfig::new` gives the defaults.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// This consumer's name in the group; stable across restarts ([`crate::ConsumerName`]),
    /// so a restarted consumer re-reads its own pending entries first.
    pub consumer: String,
    /// Entries read per partition and step.
    pub batch_size: usize,
    /// Entries pending this long on another consumer are presumed abandoned and claimed.
    pub claim_idle: Duration,
    /// An entry delivered more often than this without being settled is dead-lettered.
    pub max_deliveries: u64,
    /// Consumers with nothing pending idle this long are removed from the group.
    pub forget_idle: Duration,
    /// How long a step waits for new entries: `None` never waits (a drain), `Some` blocks on
    /// one Redis and polls every `poll` on a cluster. Kept under the Redis command timeout.
    pub block: Option<Duration>,
    pub poll: Duration,
    /// First and longest wait between retries while a step fails.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Trim each stream below what every group still needs after settling a batch.
    pub trim: bool,
    /// While a full batch is applied, read the next one (the archive's throughput).
    pub prefetch: bool,
    /// How often the lag is measured and published.
    pub measure_every: Duration,
}

impl ConsumerConfig {
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            consumer: consumer.into(),
            batch_size: 500,
            claim_idle: Duration::from_secs(60),
            max_deliveries: 10,
            forget_idle: Duration::from_secs(3_600),
            block: Some(Duration::from_secs(1)),
            poll: Duration::from_millis(50),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            trim: false,
            prefetch: false,
            measure_every: Duration::from_secs(1),
        }
    }
}

/// What one step did. "Nothing to do" is a value, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new, nothing pending, nothing to claim.
    Idle,
    Settled(BatchReport),
}

/// One batch, settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub partition: u16,
    /// Entries of the batch.
    pub entries: usize,
    /// Entries acked by the engine or the role (applied, dead-lettered or gone).
    pub settled: usize,
    /// What the role reported as applied ([`Verdict::applied`]).
    pub applied: u64,
    pub dead_lettered: usize,
    /// Entries left pending (kept by the role, or failing alone).
    pub left_pending: usize,
}

/// Totals of one [`Consumer::drain`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub batches: usize,
    pub entries: usize,
    pub settled: usize,
    pub applied: u64,
    pub dead_lettered: usize,
}

impl DrainReport {
    fn add(&mut self, r: &BatchReport) {
        self.batches += 1;
        self.entries += r.entries;
        self.settled += r.settled;
        self.applied += r.applied;
        self.dead_lettered += r.dead_lettered;
    }
}

/// Where a batch came from: entries delivered before are checked against the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    New,
    OwnPending,
    Claimed,
}

/// Entries of one partition on their way through a role.
#[derive(Debug)]
struct InFlight {
    batch: Batch,
    /// Set aside before the role saw them: undecodable, gone, or over the delivery cap.
    dead: Vec<DeadLetter>,
    read_at: Instant,
    /// The read returned as many entries as asked: more are probably waiting.
    full: bool,
}

impl InFlight {
    fn ids(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self.batch.entries.iter().map(|e| e.id).collect();
        ids.extend(self.dead.iter().map(|d| d.stream_id));
        ids
    }
}

#[derive(Debug)]
struct State {
    groups_ready: bool,
    /// Per partition: where the re-read of own pending entries stands (`None` once done).
    own_pending: Vec<Option<StreamId>>,
    /// Per partition: the XAUTOCLAIM cursor of the claim pass under way (`None`: done).
    claim_cursor: Vec<Option<String>>,
    next_claim: Instant,
    /// A batch that failed on an outage, retried first.
    in_hand: Option<InFlight>,
    /// Batches read but not yet applied (one read returns every partition's entries).
    queue: VecDeque<InFlight>,
    streams: Vec<StreamState>,
    last_measure: Option<Instant>,
}

/// One consumer of a group on every partition's stream, driving a [`Role`].
pub struct Consumer<R: Role> {
    role: R,
    redis: Pool,
    /// A connection of its own for blocking reads: a blocking XREADGROUP would stall every
    /// command queued behind it on a shared pool connection.
    reader: Client,
    reader_started: AtomicBool,
    layout: Layout,
    streams: Vec<String>,
    /// Partitions one XREADGROUP may name together: all on one Redis, one slot's on a cluster.
    read_groups: Vec<Vec<u16>>,
    config: ConsumerConfig,
    state: Mutex<State>,
}

impl<R: Role> Consumer<R> {
    pub fn new(role: R, redis: Pool, layout: Layout, config: ConsumerConfig) -> Self {
        let streams = layout.streams();
        let partitions = streams.len();
        let clustered = redis.next().is_clustered();
        Self {
            role,
            reader: redis.next().clone_new(),
            reader_started: AtomicBool::new(false),
            read_groups: read_groups(clustered, &streams),
            streams,
            redis,
            layout,
            config,
            state: Mutex::new(State {
                groups_ready: false,
                own_pending: vec![Some(StreamId::default()); partitions],
                claim_cursor: vec![None; partitions],
                next_claim: Instant::now(),
                in_hand: None,
                queue: VecDeque::new(),
                streams: vec![StreamState::default(); partitions],
                last_measure: None,
            }),
        }
    }

    pub fn role(&self) -> &R {
        &self.role
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Steps until `shutdown`, retrying failures with backoff. Stopping between steps, or
    /// inside one, leaves every unsettled entry pending on this consumer for its next start.
    pub async fn run_until_stopped(&self, shutdown: CancellationToken) {
        let mut backoff = self.config.retry_min;
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => break,
                step = self.step_measuring() => step,
            };
            let nap = match step {
                Ok(Outcome::Settled(_)) => {
                    backoff = self.config.retry_min;
                    continue;
                }
                Ok(Outcome::Idle) if self.config.block.is_some() => continue,
                Ok(Outcome::Idle) => self.config.poll,
                Err(e) => {
                    tracing::warn!(group = R::GROUP, error = %e, retry_in = ?backoff, "step failed; retrying");
                    let nap = backoff;
                    backoff = (backoff * 2).min(self.config.retry_max);
                    nap
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(nap) => {}
            }
        }
        if let Err(e) = self.reader.quit().await {
            tracing::debug!(group = R::GROUP, error = %e, "closing the reader connection");
        }
    }

    /// Steps until idle, retrying failures with backoff. False when `shutdown` came first.
    pub async fn drain_until_idle(&self, shutdown: &CancellationToken) -> bool {
        self.state.lock().await.next_claim = Instant::now();
        let mut backoff = self.config.retry_min;
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => return false,
                step = self.step_measuring() => step,
            };
            match step {
                Ok(Outcome::Idle) => return true,
                Ok(Outcome::Settled(_)) => backoff = self.config.retry_min,
                Err(e) => {
                    tracing::warn!(group = R::GROUP, error = %e, retry_in = ?backoff, "step failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Settles everything there is now (own pending, claimable, new), then returns. Stops at
    /// the first error; a batch that failed on an outage stays in hand for the next call.
    pub async fn drain(&self) -> Result<DrainReport, LogError> {
        self.state.lock().await.next_claim = Instant::now();
        let mut report = DrainReport::default();
        while let Outcome::Settled(batch) = self.try_process_batch().await? {
            report.add(&batch);
        }
        self.measure().await?;
        Ok(report)
    }

    /// One step, while the lag keeps being published even if the role hangs on a dependency.
    async fn step_measuring(&self) -> Result<Outcome, LogError> {
        let step = self.try_process_batch();
        tokio::pin!(step);
        loop {
            tokio::select! {
                result = &mut step => return result,
                () = tokio::time::sleep(self.config.measure_every) => {
                    if let Err(e) = self.measure().await {
                        tracing::debug!(group = R::GROUP, error = %e, "measuring the lag failed");
                    }
                }
            }
        }
    }

    /// One step: the batch in hand after an outage, else a read batch not yet applied, else
    /// own pending entries (once, after start), else a claim pass when due, else new entries.
    #[tracing::instrument(skip_all, fields(group = R::GROUP, consumer = %self.config.consumer), err)]
    pub async fn try_process_batch(&self) -> Result<Outcome, LogError> {
        let mut state = self.state.lock().await;
        let redis = self.redis.next();
        if !redis.is_connected() {
            return Err(LogError::RedisDown);
        }
        if !state.groups_ready {
            for stream in &self.streams {
                Group {
                    stream,
                    group: R::GROUP,
                }
                .ensure(redis)
                .await?;
            }
            state.groups_ready = true;
        }
        let next = match state.in_hand.take() {
            Some(held) => Some(held),
            None => match state.queue.pop_front() {
                Some(queued) => Some(queued),
                None => self.next_batch(&mut state, redis).await.inspect_err(|e| {
                    if let LogError::Redis(e) = e
                        && is_missing_group(e)
                    {
                        state.groups_ready = false;
                    }
                })?,
            },
        };
        let result = match next {
            None => Ok(Outcome::Idle),
            Some(batch) => {
                let prefetch = self.config.prefetch && batch.full && state.queue.is_empty();
                if prefetch {
                    let (settled, read) =
                        tokio::join!(self.process(redis, batch), self.read_new(redis, None));
                    match read {
                        Ok(batches) => state.queue.extend(batches),
                        Err(e) => tracing::debug!(error = %e, "prefetching the next batch failed"),
                    }
                    self.finish(&mut state, redis, settled).await
                } else {
                    let settled = self.process(redis, batch).await;
                    self.finish(&mut state, redis, settled).await
                }
            }
        };
        if state
            .last_measure
            .is_none_or(|t| t.elapsed() >= self.config.measure_every)
        {
            state.last_measure = Some(Instant::now());
            drop(state);
            if let Err(e) = self.measure().await {
                tracing::debug!(error = %e, "measuring the lag failed");
            }
        }
        result
    }

    /// Keeps a batch that failed on an outage, renewing its lease (and that of the batches
    /// read ahead) so no other consumer claims entries that only wait for a dependency.
    async fn finish(
        &self,
        state: &mut State,
        redis: &Client,
        settled: Result<BatchReport, (LogError, Option<InFlight>)>,
    ) -> Result<Outcome, LogError> {
        match settled {
            Ok(report) => {
                if self.config.trim {
                    let group = self.group(report.partition);
                    match group.maintain(redis, true).await {
                        Ok(measured) => {
                            state.streams[usize::from(report.partition)] = measured;
                            publish(R::GROUP, &state.streams);
                        }
                        // The batch is settled either way; the next batch trims.
                        Err(e) => {
                            tracing::warn!(partition = report.partition, error = %e, "trimming failed")
                        }
                    }
                }
                Ok(Outcome::Settled(report))
            }
            Err((e, held)) => {
                for batch in held.iter().chain(state.queue.iter()) {
                    let group = self.group(batch.batch.partition);
                    if let Err(renew) = group
                        .renew(redis, &self.config.consumer, &batch.ids())
                        .await
                    {
                        tracing::warn!(partition = batch.batch.partition, error = %renew, "renewing the lease of a held batch failed");
                    }
                }
                state.in_hand = held;
                Err(e)
            }
        }
    }

    fn group(&self, partition: u16) -> Group<'_> {
        Group {
            stream: &self.streams[usize::from(partition)],
            group: R::GROUP,
        }
    }

    /// Applies one batch through the role and settles it. On an outage the batch comes back
    /// with the error, to be kept in hand.
    #[tracing::instrument(skip_all, fields(partition = batch.batch.partition, batch = batch.batch.entries.len() + batch.dead.len()))]
    async fn process(
        &self,
        redis: &Client,
        batch: InFlight,
    ) -> Result<BatchReport, (LogError, Option<InFlight>)> {
        let partition = batch.batch.partition;
        let mut report = BatchReport {
            partition,
            entries: batch.batch.entries.len() + batch.dead.len(),
            ..BatchReport::default()
        };
        let mut dead = batch.dead;
        let mut ack: Vec<StreamId> = dead.iter().map(|d| d.stream_id).collect();
        if !batch.batch.entries.is_empty() {
            match self.role.apply(&batch.batch).await {
                Ok(verdict) => self.take(
                    &batch.batch.entries,
                    verdict,
                    &mut dead,
                    &mut ack,
                    &mut report,
                ),
                Err(ApplyError::Outage(e)) => {
                    let held = InFlight {
                        batch: batch.batch,
                        dead,
                        read_at: batch.read_at,
                        full: batch.full,
                    };
                    return Err((LogError::Outage(e), Some(held)));
                }
                Err(ApplyError::Poison(e)) => {
                    tracing::warn!(error = %e, "batch refused; applying its entries one at a time");
                    let mut entries = batch.batch.entries.into_iter();
                    while let Some(entry) = entries.next() {
                        let single = Batch {
                            partition,
                            entries: vec![entry],
                        };
                        match self.role.apply(&single).await {
                            Ok(verdict) => {
                                self.take(
                                    &single.entries,
                                    verdict,
                                    &mut dead,
                                    &mut ack,
                                    &mut report,
                                );
                            }
                            Err(ApplyError::Poison(e)) => {
                                let entry = &single.entries[0];
                                tracing::warn!(stream_id = %entry.id, deliveries = entry.deliveries, error = %e, "entry refused; left pending until the delivery cap");
                                report.left_pending += 1;
                            }
                            Err(ApplyError::Outage(e)) => {
                                // Settle what is done; hold the rest for the retry.
                                if let Err(settle) =
                                    self.settle(redis, partition, &dead, &ack).await
                                {
                                    tracing::warn!(error = %settle, "settling before an outage failed; entries stay pending");
                                }
                                let mut rest = single.entries;
                                rest.extend(entries);
                                let held = InFlight {
                                    batch: Batch {
                                        partition,
                                        entries: rest,
                                    },
                                    dead: Vec::new(),
                                    read_at: batch.read_at,
                                    full: false,
                                };
                                return Err((LogError::Outage(e), Some(held)));
                            }
                        }
                    }
                }
            }
        }
        // A failed settle leaves the entries pending: they are redelivered and, every role
        // being idempotent per entry, settled then. Nothing to hold on to.
        let acked = self
            .settle(redis, partition, &dead, &ack)
            .await
            .map_err(|e| (e, None))?;
        report.settled += usize::try_from(acked).unwrap_or(0);
        report.dead_lettered = dead.len();
        for d in &dead {
            tracing::warn!(stream_id = %d.stream_id, deliveries = d.deliveries, reason = %d.reason, "entry dead-lettered");
        }
        metrics::counter!("smsgate_dead_letters_total", "group" => R::GROUP)
            .increment(dead.len() as u64);
        metrics::histogram!(format!("smsgate_{}_batch_size", R::GROUP))
            .record(report.entries as f64);
        metrics::histogram!(format!("smsgate_{}_batch_duration_seconds", R::GROUP))
            .record(batch.read_at.elapsed().as_secs_f64());
        Ok(report)
    }

    /// Folds a role's verdict on `entries` into what to dead-letter and ack.
    fn take(
        &self,
        entries: &[Entry],
        verdict: Verdict,
        dead: &mut Vec<DeadLetter>,
        ack: &mut Vec<StreamId>,
        report: &mut BatchReport,
    ) {
        report.applied += verdict.applied;
        report.left_pending += verdict.keep.len();
        let set_aside: HashSet<StreamId> = verdict
            .dead
            .iter()
            .map(|d| d.0)
            .chain(verdict.keep.iter().copied())
            .collect();
        if verdict.settled_by_role {
            report.settled +=
                entries.len() - entries.iter().filter(|e| set_aside.contains(&e.id)).count();
        } else {
            ack.extend(
                entries
                    .iter()
                    .map(|e| e.id)
                    .filter(|id| !set_aside.contains(id)),
            );
        }
        for (id, deliveries, reason, payload) in verdict.dead {
            ack.push(id);
            dead.push(self.dead_letter(id, deliveries, reason, payload));
        }
    }

    fn dead_letter(
        &self,
        id: StreamId,
        deliveries: u64,
        reason: String,
        payload: Bytes,
    ) -> DeadLetter {
        DeadLetter {
            group: R::GROUP.to_owned(),
            consumer: self.config.consumer.clone(),
            stream_id: id,
            deliveries,
            reason,
            payload,
        }
    }

    async fn settle(
        &self,
        redis: &Client,
        partition: u16,
        dead: &[DeadLetter],
        ack: &[StreamId],
    ) -> Result<u64, LogError> {
        self.group(partition)
            .settle(redis, &self.layout.dead_letters(partition), dead, ack)
            .await
    }

    /// Picks the next batch: own pending first, then claims when due, then new entries.
    async fn next_batch(
        &self,
        state: &mut State,
        redis: &Client,
    ) -> Result<Option<InFlight>, LogError> {
        let count = self.config.batch_size.max(1);
        let consumer = self.config.consumer.as_str();

        for p in 0..self.layout.partitions() {
            let Some(after) = state.own_pending[usize::from(p)] else {
                continue;
            };
            let entries = self
                .group(p)
                .read(redis, consumer, From::PendingAfter(after), count)
                .await?;
            match entries.last() {
                Some(last) => {
                    state.own_pending[usize::from(p)] = Some(last.id);
                    tracing::info!(
                        partition = p,
                        entries = entries.len(),
                        "re-reading own pending entries"
                    );
                    return self
                        .in_flight(redis, p, entries, Source::OwnPending)
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
                let group = self.group(p);
                while let Some(cursor) = state.claim_cursor[usize::from(p)].clone() {
                    let (next, entries) = group
                        .autoclaim(redis, consumer, self.config.claim_idle, &cursor, count)
                        .await?;
                    state.claim_cursor[usize::from(p)] = (next != "0-0").then_some(next);
                    if !entries.is_empty() {
                        tracing::info!(
                            partition = p,
                            entries = entries.len(),
                            "claimed entries of an idle consumer"
                        );
                        return self
                            .in_flight(redis, p, entries, Source::Claimed)
                            .await
                            .map(Some);
                    }
                }
                let forgotten = group
                    .forget_idle_consumers(redis, consumer, self.config.forget_idle)
                    .await?;
                if forgotten > 0 {
                    tracing::info!(partition = p, forgotten, "removed idle consumers");
                }
            }
            // Claiming more often than entries can become claimable is wasted work.
            state.next_claim =
                Instant::now() + (self.config.claim_idle / 2).max(Duration::from_secs(1));
        }

        let mut batches = VecDeque::from(self.read_new(redis, self.config.block).await?);
        let first = batches.pop_front();
        state.queue.extend(batches);
        Ok(first)
    }

    /// New entries of every partition, one batch per partition that has any, waiting up to
    /// `block` for the first (see [`read_waiting`]).
    async fn read_new(
        &self,
        redis: &Client,
        block: Option<Duration>,
    ) -> Result<Vec<InFlight>, LogError> {
        let read = match block.filter(|b| !b.is_zero()) {
            None => try_join_all(
                self.read_groups
                    .iter()
                    .map(|g| self.read_group(redis, g, None)),
            )
            .await?
            .into_iter()
            .flatten()
            .collect(),
            Some(block) => {
                if !self.reader_started.swap(true, Ordering::SeqCst) {
                    self.reader.connect();
                    if let Err(e) = self.reader.wait_for_connect().await {
                        tracing::debug!(error = %e, "reader connection not up yet");
                    }
                }
                read_waiting(&self.read_groups, block, self.config.poll, |g, b| {
                    // Only a blocking read needs the connection of its own.
                    let client = if b.is_some() { &self.reader } else { redis };
                    self.read_group(client, g, b)
                })
                .await?
            }
        };
        let mut batches = Vec::with_capacity(read.len());
        for (p, entries) in read {
            batches.push(self.in_flight(redis, p, entries, Source::New).await?);
        }
        Ok(batches)
    }

    /// XREADGROUP of new entries over the streams of `partitions`, by partition; partitions
    /// without entries are left out.
    async fn read_group(
        &self,
        client: &Client,
        partitions: &[u16],
        block: Option<Duration>,
    ) -> Result<Vec<(u16, Vec<RawEntry>)>, LogError> {
        let streams: Vec<&str> = partitions
            .iter()
            .map(|p| self.streams[usize::from(*p)].as_str())
            .collect();
        let ids = vec![">"; streams.len()];
        let reply: Value = client
            .xreadgroup(
                R::GROUP,
                self.config.consumer.as_str(),
                Some(self.config.batch_size.max(1) as u64),
                block.map(|b| u64::try_from(b.as_millis()).unwrap_or(1_000)),
                false,
                streams,
                ids,
            )
            .await?;
        let mut out = Vec::new();
        for (stream, entries) in reply::parse_xread(reply)? {
            if let Some(p) = self.streams.iter().position(|s| *s == stream)
                && !entries.is_empty()
            {
                out.push((u16::try_from(p).unwrap_or(0), entries));
            }
        }
        Ok(out)
    }

    /// Decodes read entries, setting aside what no role can apply: undecodable, gone, or
    /// delivered more often than the cap.
    async fn in_flight(
        &self,
        redis: &Client,
        partition: u16,
        raw: Vec<RawEntry>,
        source: Source,
    ) -> Result<InFlight, LogError> {
        let read_at = Instant::now();
        let full = raw.len() >= self.config.batch_size.max(1);
        let deliveries = match (source, raw.first(), raw.last()) {
            (Source::New, ..) | (_, None, _) | (_, _, None) => Default::default(),
            (_, Some(first), Some(last)) => {
                self.group(partition)
                    .deliveries(redis, &self.config.consumer, first.id, last.id, raw.len())
                    .await?
            }
        };
        let mut batch = Batch {
            partition,
            entries: Vec::with_capacity(raw.len()),
        };
        let mut dead = Vec::new();
        for entry in raw {
            let delivered = deliveries.get(&entry.id).copied().unwrap_or(1);
            let decoded = Decoded::new(partition, entry, delivered);
            if delivered > self.config.max_deliveries {
                let payload = match &decoded {
                    Decoded::Event(e) => e.raw.clone(),
                    Decoded::Undecodable { raw, .. } => raw.clone(),
                    Decoded::Gone { .. } => Bytes::new(),
                };
                let reason = format!(
                    "delivered {delivered} times without being settled by {}",
                    R::GROUP
                );
                dead.push(self.dead_letter(decoded.id(), delivered, reason, payload));
                continue;
            }
            match decoded {
                Decoded::Event(entry) => batch.entries.push(entry),
                Decoded::Undecodable { id, raw, reason } => {
                    dead.push(self.dead_letter(id, delivered, reason, raw));
                }
                Decoded::Gone { id } => {
                    let reason = "deleted from the stream before it was settled".to_owned();
                    dead.push(self.dead_letter(id, delivered, reason, Bytes::new()));
                }
            }
        }
        Ok(InFlight {
            batch,
            dead,
            read_at,
            full,
        })
    }

    /// Measures every stream for this group (without trimming), publishes the lag and length
    /// metrics, and returns how many entries the group has not settled.
    pub async fn measure(&self) -> Result<u64, LogError> {
        let redis = self.redis.next();
        if !redis.is_connected() {
            return Err(LogError::RedisDown);
        }
        let measured = try_join_all((0..self.layout.partitions()).map(|p| {
            let group = self.group(p);
            async move { group.maintain(redis, false).await }
        }))
        .await?;
        let backlog = measured.iter().map(StreamState::lag).sum();
        publish(R::GROUP, &measured);
        // A step in progress holds the state: never wait for it, or a batch stuck on a
        // dependency would freeze the lag metrics.
        if let Ok(mut state) = self.state.try_lock() {
            state.streams = measured;
        }
        Ok(backlog)
    }

    /// The newest entry of every partition's stream right now, for tests and tools.
    pub async fn newest_ids(&self) -> Result<Vec<Option<StreamId>>, LogError> {
        let redis = self.redis.next();
        let mut out = Vec::with_capacity(self.streams.len());
        for stream in &self.streams {
            let reply: Value = redis.xrevrange(stream.as_str(), "+", "-", Some(1)).await?;
            out.push(reply::parse_entries(reply)?.first().map(|e| e.id));
        }
        Ok(out)
    }
}

/// Publishes the gauges from the last measurement of every stream; the totals span
/// partitions, so all are republished whichever changed.
fn publish(group: &str, streams: &[StreamState]) {
    let lag: u64 = streams.iter().map(StreamState::lag).sum();
    let oldest = streams
        .iter()
        .map(|s| s.oldest_age)
        .max()
        .unwrap_or_default();
    metrics::gauge!(format!("smsgate_{group}_lag_entries")).set(lag as f64);
    metrics::gauge!(format!("smsgate_{group}_lag_seconds")).set(oldest.as_secs_f64());
    for (p, s) in streams.iter().enumerate() {
        metrics::gauge!("smsgate_stream_length", "partition" => p.to_string()).set(s.length as f64);
    }
}

/// Reads with `read` over every read group (see [`read_groups`]), waiting up to `block` for
/// anything: one blocking read when one command names every partition (one Redis); otherwise
/// non-blocking reads of every group at once, repeated every `poll` until something arrives or
/// `block` has passed (Redis Cluster, where a command names keys of one slot only). `read`
/// gets a group and `Some(block)` for a blocking read, `None` for a non-blocking one.
pub async fn read_waiting<'a, T, E, F, Fut>(
    groups: &'a [Vec<u16>],
    block: Duration,
    poll: Duration,
    read: F,
) -> Result<Vec<T>, E>
where
    F: Fn(&'a [u16], Option<Duration>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
{
    if let [all] = groups {
        return read(all, Some(block)).await;
    }
    let deadline = Instant::now() + block;
    loop {
        let reads = try_join_all(groups.iter().map(|g| read(g, None))).await?;
        let all: Vec<T> = reads.into_iter().flatten().collect();
        let now = Instant::now();
        if !all.is_empty() || now >= deadline {
            return Ok(all);
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
}

/// Groups of partitions that one multi-key stream command may name together: all of them on
/// one Redis; on a cluster those whose keys share a hash slot (in practice one each).
pub fn read_groups(clustered: bool, streams: &[String]) -> Vec<Vec<u16>> {
    let all = (0..streams.len()).map(|p| u16::try_from(p).unwrap_or(0));
    if !clustered {
        return vec![all.collect()];
    }
    let mut by_slot: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for (p, stream) in all.zip(streams) {
        by_slot
            .entry(fred::util::redis_keyslot(stream.as_bytes()))
            .or_default()
            .push(p);
    }
    by_slot.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_redis_reads_every_partition_at_once_a_cluster_one_slot_at_a_time() {
        let streams = Layout::new("t", 16).streams();
        assert_eq!(
            read_groups(false, &streams),
            [(0..16).collect::<Vec<u16>>()]
        );
        let groups = read_groups(true, &streams);
        assert_eq!(groups.len(), 16);
        for group in &groups {
            let slots: std::collections::HashSet<u16> = group
                .iter()
                .map(|p| fred::util::redis_keyslot(streams[usize::from(*p)].as_bytes()))
                .collect();
            assert_eq!(slots.len(), 1);
        }
        let mut all: Vec<u16> = groups.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..16).collect::<Vec<u16>>());
    }
}
