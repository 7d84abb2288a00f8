//! smsgate's delivery: the dispatcher hands accepted SMS to the configured provider and records
//! every status change of each message as an event on the stream (through `limiter`, the only
//! writer of the stream), reports those changes to the client's `status_callback`, and answers
//! `GET /api/sms/{id}` and the provider's receipts.
//!
//! Reading the stream is the shared consumer engine's job; this crate only says what delivering
//! a batch of decisions means ([`Dispatcher::deliver`]) and runs the retry schedule.
//!
//! # Layout
//! - [`provider`]: the `Provider` trait every backend implements, and its error classes.
//! - [`log`]: the default `log` provider (an outbox file; delivered at once).
//! - [`twilio`]: Twilio's REST Messages API, and the `X-Twilio-Signature` check of its receipts.
//! - [`smpp`]: SMPP 3.4 to an SMSC: windowed submit_sm, reconnects, deliver_sm receipts.
//! - [`bucket`]: the Redis token bucket behind `SMSGATE_PROVIDER_TPS`.
//! - [`dispatch`]: `Dispatcher`: admit, attempt, record, retry with backoff, expire.
//! - [`callbacks`]: signed, SSRF-checked client callbacks with retries.
//! - [`role`]: `Deliver`, the consumer engine's role for the group `dispatcher`.
//! - [`http`]: `GET /api/sms/{id}` and `POST /api/providers/twilio/status`.
//! - [`telemetry`]: metric names.

pub mod bucket;
pub mod callbacks;
pub mod dispatch;
pub mod http;
pub mod log;
pub mod provider;
pub mod role;
pub mod smpp;
pub mod telemetry;
pub mod twilio;

pub use dispatch::{DispatchError, Dispatcher, DispatcherConfig, StepOutcome};
pub use provider::{Accepted, Outbound, Provider, SendError};
pub use role::Deliver;

/// The consumer group of the dispatcher.
pub const GROUP: &str = "dispatcher";
