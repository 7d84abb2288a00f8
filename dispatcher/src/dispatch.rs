//! The dispatch logic: a message is admitted (its state created as `queued`), then each attempt
//! records `sending` before the provider is called and the result after, so a crash repeats at
//! most the attempts in flight. Transient errors put the message back on the partition's
//! schedule with backoff until its deadline (`SMSGATE_DELIVERY_TTL` after the decision), then
//! `expired`; permanent errors are `failed` at once.
//!
//! Two entry points, both plain steps a test can drive: [`Dispatcher::deliver`] for a batch of
//! decisions read from the stream, and [`Dispatcher::retry_step`] for messages whose retry is due
//! (or whose dispatcher died mid-attempt: a claim lapses after `lease`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool};
use futures::StreamExt;
use limiter::Layout;
use limiter::delivery::{
    Admission, Change, Deliverable, DeliveryError, DeliveryStatus, DeliveryStore, Schedule,
    StatusEvent, now_us,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bucket::TokenBucket;
use crate::callbacks::{CallbackSender, Sent, next_try};
use crate::provider::{Outbound, Provider, SendError};
use crate::telemetry::{ATTEMPTS, CALLBACKS, PROVIDER_LATENCY, SCHEDULED, STATUS};

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// A message not handed over this long after its decision is `expired`.
    pub ttl: Duration,
    /// How long a claimed message is left to its dispatcher before another takes it over.
    /// Longer than the provider's timeout plus a wait for a token.
    pub lease: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Sends in flight at once per dispatcher.
    pub concurrency: usize,
    /// Due messages (and callbacks) taken per partition per step.
    pub claim_batch: usize,
    /// `SMSGATE_PROVIDER_TPS`: sends a second across every replica.
    pub tps: u32,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3_600),
            lease: Duration::from_secs(60),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            concurrency: 64,
            claim_batch: 256,
            tps: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] DeliveryError),
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    Idle,
    Worked(usize),
}

/// A message ready for an attempt.
#[derive(Clone, Debug)]
struct Job {
    partition: u16,
    id: Uuid,
    to: String,
    from: Option<String>,
    body: String,
    attempts: u32,
    deadline_us: i64,
}

pub struct Dispatcher {
    redis: Pool,
    store: DeliveryStore,
    provider: Arc<dyn Provider>,
    bucket: TokenBucket,
    callbacks: Option<CallbackSender>,
    config: DispatcherConfig,
}

impl Dispatcher {
    pub fn new(
        redis: Pool,
        layout: Layout,
        provider: Arc<dyn Provider>,
        callbacks: Option<CallbackSender>,
        config: DispatcherConfig,
    ) -> Self {
        let bucket = TokenBucket::new(layout.global("provider:tokens"), config.tps);
        Self {
            redis,
            store: DeliveryStore::new(layout),
            provider,
            bucket,
            callbacks,
            config,
        }
    }

    pub fn store(&self) -> &DeliveryStore {
        &self.store
    }

    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    fn redis(&self) -> &Client {
        self.redis.next()
    }

    /// Admits a batch of decisions read from `partition`'s stream and makes the first attempt
    /// of each. A decision already admitted (read again after a crash) is left to the schedule.
    /// Returns how many were admitted. An error means nothing is known about the batch: the
    /// caller leaves it unacknowledged, and reading it again is safe.
    #[tracing::instrument(skip_all, fields(partition, messages = messages.len()), err)]
    pub async fn deliver(
        &self,
        partition: u16,
        messages: &[Deliverable],
    ) -> Result<usize, DispatchError> {
        let ttl_us = i64::try_from(self.config.ttl.as_micros()).unwrap_or(i64::MAX);
        let bodies = self.store.bodies(self.redis(), partition, messages).await?;
        let mut jobs = Vec::with_capacity(messages.len());
        let mut lost = Vec::new();
        for (message, body) in messages.iter().zip(bodies) {
            let admission = Admission {
                message,
                body: body.as_deref().unwrap_or(""),
                provider: self.provider.name(),
                deadline_us: message.at_us.saturating_add(ttl_us),
                due_ms: now_ms() + self.lease_ms(),
            };
            if self
                .store
                .admit(self.redis(), partition, &admission)
                .await?
            {
                let job = Job {
                    partition,
                    id: message.id,
                    to: message.to.clone(),
                    from: message.from.clone(),
                    body: body.clone().unwrap_or_default(),
                    attempts: 0,
                    deadline_us: admission.deadline_us,
                };
                match body {
                    Some(_) => jobs.push(job),
                    None => lost.push(job),
                }
            }
        }
        let admitted = jobs.len() + lost.len();
        for job in lost {
            // Its body outlived the delivery TTL in Redis and is gone: past its deadline, the
            // message could only have expired.
            self.record(
                &job,
                DeliveryStatus::Expired,
                0,
                Said::detail(
                    "the body was no longer held (dispatcher later than the delivery TTL)".into(),
                ),
                Schedule::Unschedule,
            )
            .await?;
        }
        self.attempt_all(jobs).await?;
        Ok(admitted)
    }

    /// Attempts every message whose retry is due (or whose claim lapsed), on every partition.
    #[tracing::instrument(skip_all, err)]
    pub async fn retry_step(&self) -> Result<StepOutcome, DispatchError> {
        let mut jobs = Vec::new();
        for partition in 0..self.store.layout().partitions() {
            let ids = self
                .store
                .claim_due(
                    self.redis(),
                    partition,
                    now_ms(),
                    self.lease_ms(),
                    self.config.claim_batch,
                )
                .await?;
            for id in ids {
                match self.store.load(self.redis(), partition, &id).await? {
                    Some(state) if !state.status.is_final() && state.body.is_some() => {
                        jobs.push(Job {
                            partition,
                            id,
                            to: state.to,
                            from: state.from,
                            body: state.body.unwrap_or_default(),
                            attempts: state.attempts,
                            deadline_us: state.deadline_us,
                        })
                    }
                    _ => self.store.unschedule(self.redis(), partition, &id).await?,
                }
            }
        }
        let count = jobs.len();
        self.attempt_all(jobs).await?;
        self.observe_schedule().await;
        Ok(if count == 0 {
            StepOutcome::Idle
        } else {
            StepOutcome::Worked(count)
        })
    }

    async fn observe_schedule(&self) {
        use fred::interfaces::SortedSetsInterface;
        let mut total = 0u64;
        for partition in 0..self.store.layout().partitions() {
            let key = self.store.schedule_key(partition);
            total += self.redis().zcard::<u64, _>(key).await.unwrap_or(0);
        }
        metrics::gauge!(SCHEDULED).set(total as f64);
    }

    async fn attempt_all(&self, jobs: Vec<Job>) -> Result<(), DispatchError> {
        let results: Vec<Result<(), DispatchError>> = futures::stream::iter(jobs)
            .map(|job| async move { self.attempt(job).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn attempt(&self, job: Job) -> Result<(), DispatchError> {
        if now_us() >= job.deadline_us {
            let detail = format!(
                "not handed over within {}s ({} attempts)",
                self.config.ttl.as_secs(),
                job.attempts
            );
            self.record(
                &job,
                DeliveryStatus::Expired,
                job.attempts,
                Said::detail(detail),
                Schedule::Unschedule,
            )
            .await?;
            return Ok(());
        }
        self.bucket.take(self.redis()).await?;
        let attempt = job.attempts + 1;
        let lease = Schedule::DueAt {
            ms: now_ms() + self.lease_ms(),
        };
        if !self
            .record(
                &job,
                DeliveryStatus::Sending,
                attempt,
                Said::default(),
                lease,
            )
            .await?
        {
            return Ok(());
        }
        let started = Instant::now();
        let result = self
            .provider
            .send(Outbound {
                id: job.id,
                to: &job.to,
                from: job.from.as_deref(),
                body: &job.body,
            })
            .await;
        let latency = started.elapsed();
        let provider = self.provider.name();
        metrics::histogram!(PROVIDER_LATENCY, "provider" => provider).record(latency.as_secs_f64());
        match result {
            Ok(accepted) => {
                metrics::counter!(ATTEMPTS, "provider" => provider, "result" => "sent")
                    .increment(1);
                let id = Some(accepted.provider_id);
                let sent = Change {
                    event: self.event(
                        &job,
                        DeliveryStatus::Sent,
                        attempt,
                        Said {
                            provider_id: id.clone(),
                            latency: Some(latency),
                            ..Said::default()
                        },
                    ),
                    schedule: Schedule::Unschedule,
                };
                if accepted.delivered {
                    // Both or neither: a crash between the two would leave the message `sent`
                    // forever, as no receipt will come for it.
                    let delivered = Change {
                        event: self.event(
                            &job,
                            DeliveryStatus::Delivered,
                            attempt,
                            Said {
                                provider_id: id,
                                ..Said::default()
                            },
                        ),
                        schedule: Schedule::Unschedule,
                    };
                    self.commit(&job, &[sent, delivered]).await?;
                } else if let Some(sid) = &id {
                    self.commit(&job, &[sent]).await?;
                    use fred::interfaces::KeysInterface;
                    let keep = i64::try_from(DeliveryStore::DEFAULT_KEEP_SECS).unwrap_or(i64::MAX);
                    self.redis()
                        .set::<(), _, _>(
                            sid_key(&self.store, sid),
                            job.id.to_string(),
                            Some(fred::types::Expiration::EX(keep)),
                            None,
                            false,
                        )
                        .await?;
                }
            }
            Err(SendError::Permanent { detail }) => {
                metrics::counter!(ATTEMPTS, "provider" => provider, "result" => "permanent")
                    .increment(1);
                self.record(
                    &job,
                    DeliveryStatus::Failed,
                    attempt,
                    Said {
                        latency: Some(latency),
                        ..Said::detail(detail)
                    },
                    Schedule::Unschedule,
                )
                .await?;
            }
            Err(SendError::Transient {
                detail,
                retry_after,
            }) => {
                metrics::counter!(ATTEMPTS, "provider" => provider, "result" => "transient")
                    .increment(1);
                let wait = self.backoff(attempt).max(retry_after.unwrap_or_default());
                let deadline_ms = job.deadline_us / 1000;
                let due = (now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
                    .min(deadline_ms);
                let detail = format!(
                    "attempt {attempt}: {detail}; next in {:.1}s",
                    (due - now_ms()).max(0) as f64 / 1000.0
                );
                self.record(
                    &job,
                    DeliveryStatus::Queued,
                    attempt,
                    Said {
                        latency: Some(latency),
                        ..Said::detail(detail)
                    },
                    Schedule::DueAt { ms: due },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// `retry_min · 2^(attempt-1)`, at most `retry_max`, plus up to a tenth of jitter so
    /// messages that failed together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .retry_min
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let base = exp.min(self.config.retry_max);
        base + base.mul_f64(rand::random::<f64>() / 10.0)
    }

    async fn record(
        &self,
        job: &Job,
        status: DeliveryStatus,
        attempt: u32,
        said: Said,
        schedule: Schedule,
    ) -> Result<bool, DispatchError> {
        let change = Change {
            event: self.event(job, status, attempt, said),
            schedule,
        };
        Ok(self.commit(job, &[change]).await? == 1)
    }

    fn event(&self, job: &Job, status: DeliveryStatus, attempt: u32, said: Said) -> StatusEvent {
        let mut event = StatusEvent::new(job.id, &job.to, status, self.provider.name());
        event.attempt = attempt;
        event.provider_id = said.provider_id;
        event.detail = said.detail;
        event.latency_us = said
            .latency
            .map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX));
        event
    }

    /// Records `changes` of `job` in order, in one atomic step; how many changed something.
    async fn commit(&self, job: &Job, changes: &[Change]) -> Result<usize, DispatchError> {
        let recorded = self
            .store
            .change_all(self.redis(), job.partition, changes)
            .await?;
        // Changes that record nothing are repeats after a crash; they come last in practice
        // (a final status ends the message), so the first `recorded` are the ones counted.
        for change in changes.iter().take(recorded) {
            metrics::counter!(STATUS, "status" => change.event.status.as_str(), "provider" => self.provider.name())
                .increment(1);
        }
        Ok(recorded)
    }

    /// Posts every due client callback once, on every partition.
    #[tracing::instrument(skip_all, err)]
    pub async fn callback_step(&self) -> Result<StepOutcome, DispatchError> {
        let Some(sender) = &self.callbacks else {
            return Ok(StepOutcome::Idle);
        };
        let mut count = 0;
        for partition in 0..self.store.layout().partitions() {
            let due = self
                .store
                .claim_callbacks(
                    self.redis(),
                    partition,
                    now_ms(),
                    self.lease_ms(),
                    self.config.claim_batch,
                )
                .await?;
            count += due.len();
            let unix = now_ms() / 1000;
            let results: Vec<_> = futures::stream::iter(due)
                .map(|cb| async move {
                    let sent = sender.post(&cb, unix).await;
                    (cb, sent)
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .collect()
                .await;
            for (cb, sent) in results {
                let redis = self.redis();
                match sent {
                    Sent::Answered => {
                        metrics::counter!(CALLBACKS, "result" => "answered").increment(1);
                        self.store.callback_done(redis, partition, &cb.id).await?;
                    }
                    Sent::Refused(reason) => {
                        metrics::counter!(CALLBACKS, "result" => "refused").increment(1);
                        tracing::warn!(url = %cb.target.url(), %reason, "status callback refused");
                        self.store.callback_done(redis, partition, &cb.id).await?;
                    }
                    Sent::Failed(reason) => {
                        match next_try(cb.first_ms, now_ms(), sender.config().max_age) {
                            Some(due) => {
                                metrics::counter!(CALLBACKS, "result" => "failed").increment(1);
                                tracing::debug!(url = %cb.target.url(), %reason, "status callback failed");
                                self.store
                                    .callback_retry(redis, partition, &cb.id, due)
                                    .await?;
                            }
                            None => {
                                metrics::counter!(CALLBACKS, "result" => "expired").increment(1);
                                tracing::warn!(url = %cb.target.url(), %reason, "status callback given up");
                                self.store.callback_done(redis, partition, &cb.id).await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(if count == 0 {
            StepOutcome::Idle
        } else {
            StepOutcome::Worked(count)
        })
    }

    /// Runs the retry schedule and the client callbacks until `shutdown`, pausing `idle` when
    /// there was nothing to do. The decisions themselves come through [`Self::deliver`].
    pub async fn run_schedule_until_stopped(&self, idle: Duration, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let retried = self.retry_step().await;
            let called = self.callback_step().await;
            let busy = matches!(retried, Ok(StepOutcome::Worked(_)))
                || matches!(called, Ok(StepOutcome::Worked(_)));
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(idle) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The provider id → message index, for receipts that do not carry smsgate's id in their URL.
pub fn sid_key(store: &DeliveryStore, provider_id: &str) -> String {
    store.layout().global(&format!("sid:{provider_id}"))
}

fn now_ms() -> i64 {
    now_us() / 1000
}

/// What one attempt's status event says beside its status: the provider's id and error, and
/// how long the provider call took (on the status recorded right after the call).
#[derive(Default)]
struct Said {
    provider_id: Option<String>,
    detail: Option<String>,
    latency: Option<Duration>,
}

impl Said {
    fn detail(detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..Self::default()
        }
    }
}
