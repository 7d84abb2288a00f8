//! The projector's consumer group: [`Projector`] runs the engine of [`eventlog`] with a role
//! that applies each batch with [`crate::apply`], whose script counts an entry only if the
//! same atomic step acknowledges it. Reading, claiming, the delivery cap, dead letters, lag
//! and cluster-aware reading are the engine's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventlog::{ApplyError, Batch, Consumer, ConsumerConfig, Role, Verdict};
use fred::clients::Pool;
use limiter::{Layout, Policy};
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyReport, Retention, apply};
use crate::error::ProjectorError;
use crate::keys::PartitionKeys;

/// The consumer group every projector process joins.
pub const GROUP: &str = "projector";

#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    /// This process's consumer name; stable across restarts so its pending entries are its own.
    pub consumer: String,
    /// Entries read per partition and step.
    pub batch_size: usize,
    /// How long another consumer's entry must sit unacknowledged before it is claimed.
    pub claim_idle: Duration,
    /// An entry delivered more often than this without being projected is dead-lettered.
    pub max_deliveries: u64,
    /// How long one read waits for new entries (kept under the Redis command timeout).
    pub block: Duration,
    /// On Redis Cluster, where no single read can wait on every partition: how often the
    /// partitions are polled while waiting for new entries.
    pub poll: Duration,
    pub retention: Retention,
}

impl ProjectorConfig {
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            consumer: consumer.into(),
            batch_size: 500,
            // Claiming a live but slow consumer's entries costs nothing (the apply step counts
            // an entry once whoever applies it), so a dead consumer's entries wait only briefly.
            claim_idle: Duration::from_secs(5),
            max_deliveries: 10,
            block: Duration::from_secs(1),
            poll: Duration::from_millis(50),
            retention: Retention::default(),
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to read within the block time.
    Idle,
    Projected(ApplyReport),
}

/// The projector's side of the engine: apply a batch to the projections, acking atomically.
struct Projection {
    redis: Pool,
    partitions: Vec<PartitionKeys>,
    retention: Retention,
}

impl Role for Projection {
    const GROUP: &'static str = GROUP;

    #[tracing::instrument(skip_all, fields(partition = batch.partition, batch = batch.entries.len()))]
    async fn apply(&self, batch: &Batch) -> Result<Verdict, ApplyError> {
        let keys = &self.partitions[usize::from(batch.partition)];
        let report = apply(
            self.redis.next(),
            keys,
            Some(GROUP),
            &self.retention,
            &batch.entries,
        )
        .await
        .map_err(|e| {
            if eventlog::is_connection_error(&e) {
                ApplyError::outage(e)
            } else {
                ApplyError::poison(e)
            }
        })?;
        metrics::counter!("smsgate_projector_events_projected_total")
            .increment(report.applied as u64);
        let now_us = now_micros();
        for event in batch.entries.iter().filter_map(|e| e.event()) {
            let delay = (now_us - event.at_us).max(0) as f64 / 1e6;
            metrics::histogram!("smsgate_projector_delay_seconds").record(delay);
        }
        Ok(Verdict::settled_by_role().applied(report.applied as u64))
    }
}

pub struct Projector {
    consumer: Consumer<Projection>,
    policy: Policy,
    config: ProjectorConfig,
}

impl Projector {
    pub fn new(redis: Pool, layout: Layout, policy: Policy, config: ProjectorConfig) -> Self {
        let role = Projection {
            redis: redis.clone(),
            partitions: PartitionKeys::all(&layout),
            retention: config.retention.clone(),
        };
        let engine = ConsumerConfig {
            batch_size: config.batch_size,
            claim_idle: config.claim_idle,
            max_deliveries: config.max_deliveries,
            block: Some(config.block),
            poll: config.poll,
            ..ConsumerConfig::new(config.consumer.clone())
        };
        Self {
            consumer: Consumer::new(role, redis, layout, engine),
            policy,
            config,
        }
    }

    pub fn layout(&self) -> &Layout {
        self.consumer.layout()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn config(&self) -> &ProjectorConfig {
        &self.config
    }

    /// Projects until `shutdown` fires. Each step is applied atomically, so stopping between
    /// a read and its apply leaves the entries pending for this consumer's next start.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> Result<(), ProjectorError> {
        self.consumer.run_until_stopped(shutdown).await;
        Ok(())
    }

    /// One step of the engine: own pending entries while any are left, else a claim pass when
    /// due, else new entries (waiting up to `block` for them).
    pub async fn try_process_batch(&self) -> Result<Outcome, ProjectorError> {
        Ok(match self.consumer.try_process_batch().await? {
            eventlog::Outcome::Idle => Outcome::Idle,
            eventlog::Outcome::Settled(r) => Outcome::Projected(ApplyReport {
                applied: usize::try_from(r.applied).unwrap_or(usize::MAX),
                dead_lettered: r.dead_lettered,
                skipped: r
                    .settled
                    .saturating_sub(r.dead_lettered + usize::try_from(r.applied).unwrap_or(0)),
            }),
        })
    }

    /// Entries on the streams the group has not yet settled, summed over partitions.
    pub async fn lag_entries(&self) -> Result<u64, ProjectorError> {
        Ok(self.consumer.measure().await?)
    }
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
