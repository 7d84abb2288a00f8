//! `Archiver`: the archive role on the `eventlog` engine. `run_until_stopped` waits for the
//! interval (or a backlog), then drains: the engine steps until idle, reading, claiming,
//! capping and acking; the role only turns a batch into rows and commits them:
//!
//! 1. decode (the engine) and turn each event into a row; what cannot be archived becomes a
//!    dead letter;
//! 2. make sure the batch's day partitions exist, insert the rows in one transaction
//!    (`ON CONFLICT (id, outcome, at) DO NOTHING`, the partition keys being part of the key)
//!    and COMMIT;
//! 3. the engine writes the dead letters and XACKs the batch atomically, then trims the stream
//!    below what every group still needs.
//!
//! A crash before 3 re-delivers the batch (the insert then skips what it already has); a
//! Postgres outage at 2 keeps the batch in hand and pending in Redis, and retries it; a batch
//! Postgres refuses is split by the engine, and a single row it refuses is dead-lettered.
//!
//! Before each drain the archiver also runs the retention step ([`crate::retention::maintain`]):
//! partitions ahead are created and those past their kind's retention dropped.

use std::sync::Arc;
use std::time::Instant;

use eventlog::{ApplyError, Batch, Consumer, ConsumerConfig, Role, Verdict};
use fred::clients::Pool;
use limiter::Layout;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::ArchiverConfig;
use crate::entry::Row;
use crate::error::ArchiverError;
use crate::metrics as m;
use crate::retention::{self, Maintenance, Partitions};
use crate::store;

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

/// The archive's side of the engine: rows into Postgres, committed before the engine acks.
struct Archive {
    pg: PgPool,
    config: ArchiverConfig,
    partitions: Arc<Partitions>,
}

impl Role for Archive {
    const GROUP: &'static str = crate::GROUP;

    #[tracing::instrument(skip_all, fields(partition = batch.partition, batch = batch.entries.len()))]
    async fn apply(&self, batch: &Batch) -> Result<Verdict, ApplyError> {
        let mut verdict = Verdict::ack_rest();
        let mut rows = Vec::with_capacity(batch.entries.len());
        let mut archived = Vec::with_capacity(batch.entries.len());
        let mut statuses = Vec::new();
        for entry in &batch.entries {
            let event = match &entry.record {
                limiter::delivery::Record::Decision(event) => event,
                limiter::delivery::Record::Status(status) => {
                    statuses.push((entry.id.to_string(), batch.partition, status));
                    continue;
                }
            };
            match Row::new(batch.partition, &entry.id.to_string(), event) {
                Ok(row) => {
                    rows.push(row);
                    archived.push(entry);
                }
                Err(reason) => verdict.dead_letter(entry, reason),
            }
        }
        let started = Instant::now();
        // Before the decisions: if this fails nothing is acked, and a redelivery inserts
        // each status once (its UUID is the key).
        if let Err(e) = store::insert_statuses(&self.pg, &self.partitions, &statuses).await {
            metrics::counter!(m::POSTGRES_ERRORS).increment(1);
            self.forget_partitions_after(&e);
            return Err(match e.is_transient() {
                true => ApplyError::outage(e),
                false => ApplyError::poison(e),
            });
        }
        let inserted = match store::insert_rows(&self.pg, &self.partitions, &rows).await {
            Ok(inserted) => inserted,
            Err(e) => {
                metrics::counter!(m::POSTGRES_ERRORS).increment(1);
                self.forget_partitions_after(&e);
                return match (e.is_transient(), archived.as_slice()) {
                    (true, _) => Err(ApplyError::outage(e)),
                    // Postgres refused this very row: retrying it would fail forever.
                    (false, [entry]) => {
                        verdict.dead_letter(entry, format!("refused by postgres: {e}"));
                        Ok(verdict)
                    }
                    (false, _) => Err(ApplyError::poison(e)),
                };
            }
        };
        metrics::histogram!(m::INSERT_DURATION).record(started.elapsed().as_secs_f64());
        metrics::counter!(m::EVENTS_ARCHIVED).increment(inserted);
        Ok(verdict.applied(inserted))
    }
}

impl Archive {
    /// A row with no partition to go to: another archiver dropped a day this one thought it
    /// had. Forgetting them makes the retry create it again (the error is transient).
    fn forget_partitions_after(&self, e: &ArchiverError) {
        if e.is_missing_partition() {
            self.partitions.forget();
        }
    }
}

/// Copies the event streams into Postgres. Any number of archivers may run at once: the
/// consumer group shares the entries among them.
pub struct Archiver {
    consumer: Consumer<Archive>,
}

impl Archiver {
    pub fn new(redis: Pool, pg: PgPool, layout: Layout, config: ArchiverConfig) -> Self {
        let engine = ConsumerConfig {
            batch_size: config.batch_size.max(1),
            claim_idle: config.claim_idle,
            max_deliveries: config.max_deliveries,
            forget_idle: config.forget_idle,
            block: None,
            retry_min: config.retry_min,
            retry_max: config.retry_max,
            trim: true,
            // While Postgres inserts a full batch, read the next one from Redis: the two
            // overlap, which is most of the archive's throughput.
            prefetch: true,
            measure_every: config.backlog_check,
            ..ConsumerConfig::new(config.consumer.clone())
        };
        let role = Archive {
            pg,
            config,
            partitions: Arc::new(Partitions::new()),
        };
        Self {
            consumer: Consumer::new(role, redis, layout, engine),
        }
    }

    /// The retention step at `now` (the clock is a parameter so tests can move it): creates
    /// the partitions ahead and drops those past `config.retention`.
    pub async fn maintain(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Maintenance, ArchiverError> {
        let role = self.consumer.role();
        retention::maintain(&role.pg, &role.partitions, &role.config.retention, now).await
    }

    pub fn config(&self) -> &ArchiverConfig {
        &self.consumer.role().config
    }

    /// Archives every `interval`, earlier when the backlog passes `backlog_threshold`, until
    /// `shutdown`. A batch waiting for Postgres is handed back (it stays pending in Redis and
    /// is re-read by this consumer's next start or claimed by another archiver).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), ArchiverError> {
        let config = self.config().clone();
        let mut next_drain = Instant::now();
        loop {
            // Wait for the interval, a backlog, or shutdown.
            loop {
                let now = Instant::now();
                if now >= next_drain {
                    break;
                }
                match self.backlog_due().await {
                    Ok(true) => {
                        tracing::info!(
                            threshold = config.backlog_threshold,
                            "archive backlog over threshold, draining early"
                        );
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "measuring the archive lag failed"),
                }
                let nap = config.backlog_check.min(next_drain - now);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(nap) => {}
                }
            }
            next_drain = Instant::now() + config.interval;
            // Retention never blocks archiving: a failed step is tried again at the next drain,
            // and the insert creates any day partition it needs on its own.
            if let Err(e) = self.maintain(chrono::Utc::now()).await {
                metrics::counter!(m::RETENTION_ERRORS).increment(1);
                tracing::warn!(error = %e, "archive retention step failed");
            }
            if !self.consumer.drain_until_idle(&shutdown).await {
                return Ok(());
            }
        }
    }

    /// Whether the backlog has reached `backlog_threshold`, so [`Self::run_until_stopped`]
    /// drains before the interval is up. Measures, so the lag metrics are published too.
    pub async fn backlog_due(&self) -> Result<bool, ArchiverError> {
        Ok(self.measure().await? >= self.config().backlog_threshold)
    }

    /// Archives everything there is now (new entries, this consumer's own pending entries and
    /// abandoned ones old enough to claim), then returns. Stops at the first error; the batch
    /// that failed stays in hand for the next call.
    pub async fn drain(&self) -> Result<DrainReport, ArchiverError> {
        let report = self.consumer.drain().await?;
        Ok(DrainReport {
            batches: report.batches,
            entries: report.settled,
            inserted: report.applied,
            dead_lettered: report.dead_lettered,
        })
    }

    /// One step: archive one batch, or report that there is nothing to do.
    pub async fn try_process_batch(&self) -> Result<Outcome, ArchiverError> {
        Ok(match self.consumer.try_process_batch().await? {
            eventlog::Outcome::Idle => Outcome::Idle,
            eventlog::Outcome::Settled(r) => Outcome::Archived {
                partition: r.partition,
                entries: r.settled,
                inserted: r.applied,
                dead_lettered: r.dead_lettered,
            },
        })
    }

    /// Measures every stream (without trimming), publishes the lag and length metrics, and
    /// returns the total number of entries not yet archived.
    pub async fn measure(&self) -> Result<u64, ArchiverError> {
        Ok(self.consumer.measure().await?)
    }
}
