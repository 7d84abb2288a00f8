//! The read side of smsgate's partitioned event log, and the one consumer-group engine that
//! every role reading it runs on.
//!
//! `limiter` writes the log: one Redis stream per partition, `<ns>:{p}:events`, each entry an
//! event encoded by `limiter::codec` in field `e`. This crate reads it: stream ids, replies in
//! either protocol (RESP2 arrays, RESP3 maps), entries decoded into [`Entry`], and [`Consumer`],
//! which runs a consumer group for a [`Role`]. The engine owns everything a group needs to be
//! reliable; a role only says how it applies a batch:
//!
//! - groups are created at start (and again after `NOGROUP`, e.g. a namespace reset);
//! - each step takes, in order: the batch kept after an outage, this consumer's own pending
//!   entries (after a restart under its stable [`ConsumerName`]), entries other consumers left
//!   idle for `claim_idle` (XAUTOCLAIM, with idle consumers removed), then new entries;
//! - entries that do not decode, that vanished from the stream, or that were delivered more
//!   than `max_deliveries` times become dead letters of one schema ([`DeadLetter`]) that keeps
//!   the original payload, written in the same atomic step that acks them;
//! - on one Redis a step blocks on one XREADGROUP over every partition; on Redis Cluster (one
//!   slot per partition) it polls each partition without blocking;
//! - lag (`smsgate_<group>_lag_entries`, `_lag_seconds`) and stream length are published, and
//!   streams are trimmed below what every group still needs when the consumer is told to.
//!
//! # Writing a role
//!
//! A role implements [`Role::apply`]: it gets a [`Batch`] of decoded entries of one partition
//! (each with its stream id, partition, delivery count, raw payload and decoded event) and
//! answers with a [`Verdict`]. It may:
//! - let the engine ack after its side effect committed ([`Verdict::ack_rest`]);
//! - settle the entries itself, atomically with its effect ([`Verdict::settled_by_role`]);
//! - dead-letter single entries ([`Verdict::dead_letter`]) or leave them pending ([`Verdict::keep`]);
//! - fail with [`ApplyError::Outage`] (the engine keeps the batch in hand, renews its lease and
//!   retries it with backoff) or [`ApplyError::Poison`] (the engine retries the entries one at a
//!   time; one that still fails stays pending until the delivery cap dead-letters it).
//!
//! A role whose effect is outside Redis (a provider call, a database commit) acks only after
//! that effect has happened, and sorts failures into the three answers the engine knows: the
//! dependency is down (retry the batch), this entry can never succeed (dead-letter it, payload
//! kept), or this entry should be tried again later (keep it pending, capped by
//! `max_deliveries`). Entries are redelivered after a crash between the effect and the ack, so
//! the effect must be idempotent per entry (here: the event id is the provider's idempotency key).
//!
//! ```no_run
//! use eventlog::{ApplyError, Batch, Consumer, ConsumerConfig, ConsumerName, Role, Verdict};
//! use limiter::Outcome;
//!
//! /// What a provider call can answer (a real one wraps an HTTP client).
//! enum Sent { Ok, Refused(String), TryLater }
//! struct Provider;
//! impl Provider {
//!     async fn send(&self, _key: uuid::Uuid, _to: &str, _text: &str) -> Result<Sent, std::io::Error> {
//!         Ok(Sent::Ok)
//!     }
//! }
//!
//! struct Dispatcher { provider: Provider }
//!
//! impl Role for Dispatcher {
//!     const GROUP: &'static str = "dispatcher";
//!
//!     async fn apply(&self, batch: &Batch) -> Result<Verdict, ApplyError> {
//!         // Ack everything not set aside below, once this function returns Ok.
//!         let mut verdict = Verdict::ack_rest();
//!         let mut sent = 0;
//!         for entry in &batch.entries {
//!             // Status changes and refused decisions: nothing to send, acked with the rest.
//!             let Some(e) = entry.event().filter(|e| e.outcome == Outcome::Accepted) else {
//!                 continue;
//!             };
//!             match self.provider.send(e.id, &e.to, &e.message).await {
//!                 Ok(Sent::Ok) => sent += 1,
//!                 Ok(Sent::Refused(why)) => verdict.dead_letter(entry, why),
//!                 Ok(Sent::TryLater) => verdict.keep(entry),
//!                 // The provider is unreachable: the engine holds this batch (renewing its
//!                 // lease so nobody claims it) and calls apply again with the same batch.
//!                 // Entries already sent are sent again then: the idempotency key makes
//!                 // that harmless.
//!                 Err(down) => return Err(ApplyError::outage(down)),
//!             }
//!         }
//!         Ok(verdict.applied(sent))
//!     }
//! }
//!
//! # async fn run(redis: fred::clients::Pool, shutdown: tokio_util::sync::CancellationToken) {
//! let layout = limiter::Layout::new("smsgate", 4);
//! let role = Dispatcher { provider: Provider };
//! let consumer = Consumer::new(role, redis, layout, ConsumerConfig::new("dispatcher-host-0"));
//! // Tests drive `consumer.try_process_batch()` (one step) or `consumer.drain()` instead.
//! consumer.run_until_stopped(shutdown).await;
//! # }
//! ```
//!
//! A role whose effect is in Redis itself can settle atomically with it instead
//! ([`Verdict::settled_by_role`], as the projector's apply-and-ack script does), and a role
//! that cannot tell one bad entry from a bad batch returns [`ApplyError::Poison`] and lets the
//! engine retry the entries one at a time. In production the consumer's name comes from
//! [`ConsumerName`], which stays the same across restarts of the same slot on the same host.
//!
//! # Layout
//! - [`StreamId`] (`id`): `<ms>-<seq>`, ordered, with a fixed-width lex form.
//! - `reply`: XREAD / XREADGROUP / XAUTOCLAIM / XRANGE replies → [`RawEntry`].
//! - `entry`: [`Entry`], decoded with limiter's codec.
//! - `dead`: the dead-letter schema, [`DeadLetter`] and [`read_dead_letters`].
//! - `group`: [`Group`], the Redis commands of one group on one stream (and its scripts).
//! - `engine`: [`Role`], [`Verdict`], [`Consumer`] (`run_until_stopped` → `try_process_batch`).
//! - `identity`: [`ConsumerName`], stable consumer names across restarts.
//! - `script`: [`Script`], EVALSHA with a reload on NOSCRIPT.

mod dead;
mod engine;
mod entry;
mod group;
mod id;
mod identity;
mod reply;
mod script;

pub use dead::{DEAD_LETTER_CAP, DeadLetter, read_dead_letters};
pub use engine::{
    ApplyError, Batch, BatchReport, BoxError, Consumer, ConsumerConfig, DrainReport, Outcome, Role,
    Verdict, read_groups, read_waiting,
};
pub use entry::{Decoded, Entry};
pub use group::{From, Group, StreamState, is_missing_group};
pub use id::{BadStreamId, PADDED_LEN, StreamId};
pub use identity::ConsumerName;
pub use reply::{RawEntry, parse_autoclaim, parse_entries, parse_map, parse_xread};
pub use script::Script;

/// Why a step of the engine failed. Nothing read is lost by an error: unsettled entries stay
/// pending in Redis (and in hand after an outage) until they are settled.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    RedisDown,
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    #[error("dependency outage: {0}")]
    Outage(BoxError),
}

impl LogError {
    /// True when the error came from Redis being unreachable rather than from a reply.
    pub fn is_redis_down(&self) -> bool {
        matches!(self, Self::RedisDown) || matches!(self, Self::Redis(e) if is_connection_error(e))
    }
}

/// True when a Redis error says the connection or the server is unavailable (retrying later
/// may succeed), false when Redis refused the command or script itself.
pub fn is_connection_error(error: &fred::error::Error) -> bool {
    use fred::error::ErrorKind as K;
    matches!(
        error.kind(),
        K::IO | K::Canceled | K::Timeout | K::Cluster | K::Routing | K::Backpressure
    ) || [
        "LOADING",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MASTERDOWN",
        "READONLY",
        "BUSY",
    ]
    .iter()
    .any(|p| error.details().starts_with(p))
}
