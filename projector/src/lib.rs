//! The read side of smsgate: live projections of the event stream, the operator API over
//! them, and the live feed.
//!
//! A [`Projector`] consumes every partition's stream as consumer group `projector` and applies
//! each batch to projections kept in Redis (so any number of API replicas share them) with one
//! Lua script that counts an entry only if the same step acknowledges it: a redelivered entry
//! is never counted twice. The [`router`] serves the projections as JSON; [`LiveFeed`] is the
//! one Redis reader per process behind every browser's `/api/live`.
//!
//! # Layout
//! - `keys`: projection key names and time buckets ([`StreamId`] is `eventlog`'s).
//! - `apply`: the atomic apply-and-acknowledge script over decoded entries.
//! - `consumer`: [`Projector`], the projection role on the `eventlog` engine.
//! - [`read`] (public): queries over the projections (totals, series, top lists, event pages, usage).
//! - `json`: the JSON shapes of `docs/operator-api.md`.
//! - `live`: [`LiveFeed`], the single stream reader fanned out over a broadcast channel.
//! - `api`: [`router`], the operator routes, and their problem+json errors.
//! - `rebuild`: recomputing the projections from an ordered source of events.
//! - `error`: the one error type of the crate, `ProjectorError`.

mod api;
mod apply;
mod consumer;
mod error;
mod json;
mod keys;
mod live;
pub mod read;
mod rebuild;

pub use api::{ApiDoc, ApiState, live_stream, router};
pub use apply::{Retention, apply};
pub use consumer::{GROUP, Outcome, Projector, ProjectorConfig};
pub use error::ProjectorError;
pub use eventlog::StreamId;
pub use json::{LatencyJson, rfc3339_micros, rfc3339_secs};
pub use keys::PartitionKeys;
pub use live::LiveFeed;
pub use rebuild::{RebuildReport, rebuild, stream_source};
