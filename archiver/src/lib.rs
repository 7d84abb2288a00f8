//! The archiver: copies every partition's event stream into PostgreSQL.
//!
//! Delivery is at-least-once from the stream and exactly-once in effect in Postgres: a batch is
//! read through the consumer group `archiver`, inserted in one transaction keyed by the event
//! UUID (with the partition keys) with `ON CONFLICT (id, outcome, at) DO NOTHING`, and XACKed only after COMMIT. A crash at any point
//! therefore re-delivers, never loses, and re-delivery inserts nothing twice. Entries that cannot
//! be archived go to the partition's dead-letter stream instead of stalling the loop, and each
//! stream is trimmed only below what every consumer group has acknowledged.
//!
//! # Layout
//! - [`config`]: `ArchiverConfig`, the knobs of the worker, and the fault-injection points tests use.
//! - [`error`]: `ArchiverError`, and how a Postgres error is classified (outage vs bad data).
//! - [`entry`]: a decoded entry → the `Row` to insert.
//! - [`store`]: Postgres: create + migrate the database, the set-based insert of one batch.
//! - [`retention`]: `SMSGATE_RETENTION`, the day partitions and the step that drops expired ones.
//! - [`worker`]: `Archiver`, the archive role on the `eventlog` engine (which reads, claims,
//!   caps, dead-letters, acks and trims): `run_until_stopped` → `drain` → `try_process_batch`.
//! - [`metrics`]: the metric names this crate exports (see `docs/metrics.md`).
//! - [`bench`]: the archive benchmark behind `smsgate bench --mode archive`.
//! - [`replay`]: the replay reader: archive and stream merged, every event once, in order.
//! - [`audit`]: `Auditor` re-derives recorded decisions with the policy model; `WhatIf`.
//! - [`history`]: volumes per hour or day from the archive.
//! - [`json`]: the Event JSON and table line of replay and the archive routes.
//! - [`http`]: the archive's HTTP routes: `/api/history` and `/api/audit`.
//! - [`replay_bench`]: the replay and audit benchmark behind `smsgate bench --mode replay`.

pub mod audit;
pub mod bench;
pub mod config;
pub mod entry;
pub mod error;
pub mod history;
pub mod http;
pub mod json;
pub mod metrics;
pub mod replay;
pub mod replay_bench;
pub mod retention;
pub mod store;
pub mod worker;

pub use config::{ArchiverConfig, FaultPause, FaultPoint};
pub use error::ArchiverError;
pub use http::{ArchiveApi, router};
pub use retention::{Kind, Maintenance, RetainedFrom, Retention};
pub use store::connect_postgres;
pub use worker::{Archiver, DrainReport, Outcome};

/// The consumer group every archiver process joins on every partition's stream.
pub const GROUP: &str = "archiver";
