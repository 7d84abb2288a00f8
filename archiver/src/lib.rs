//! The archiver: copies every partition's event stream into PostgreSQL.
//!
//! Delivery is at-least-once from the stream and exactly-once in effect in Postgres: a batch is
//! read through the consumer group `archiver`, inserted in one transaction keyed by the event
//! UUID (with the partition keys) with `ON CONFLICT (id, outcome, at) DO NOTHING`, and XACKed
//! only after COMMIT. A crash at any point therefore re-delivers, never loses, and re-delivery
//! inserts nothing twice. Entries that cannot be archived go to the partition's dead-letter
//! stream instead of stalling the loop, and each stream is trimmed only below what every
//! consumer group has acknowledged.
//!
//! This crate is the writer and the owner of the archive's schema; the queries over the
//! archive (replay, audit, history) are the `ledger` crate's.
//!
//! # Layout
//! - `config`: [`ArchiverConfig`], the knobs of the worker.
//! - `error`: [`ArchiverError`], and how a Postgres error is classified (outage vs bad data).
//! - `entry`: a decoded entry → the [`Row`] to insert.
//! - `store`: Postgres: create + migrate the database, the set-based insert of one batch.
//! - `retention`: `SMSGATE_RETENTION`, the day partitions and the step that drops expired
//!   ones, and [`RetainedFrom`], what the archive still holds (read by the ledger).
//! - `worker`: [`Archiver`], the archive role on the `eventlog` engine (which reads, claims,
//!   caps, dead-letters, acks and trims): `run_until_stopped` → `drain` → `try_process_batch`.
//! - [`metrics`]: the metric names this crate exports (see `docs/metrics.md`).

mod config;
mod entry;
mod error;
pub mod metrics;
mod retention;
mod store;
mod worker;

pub use config::ArchiverConfig;
pub use entry::Row;
pub use error::ArchiverError;
pub use retention::{Kind, Maintenance, NotHeld, Partitions, RetainedFrom, Retention};
pub use store::{MIGRATOR, connect_postgres, connect_with, insert_rows};
pub use worker::{Archiver, DrainReport, Outcome};

/// The consumer group every archiver process joins on every partition's stream.
pub const GROUP: &str = "archiver";
