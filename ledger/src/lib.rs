//! The ledger: smsgate's read side. Queries over the Postgres archive merged with the event
//! streams' hot tail, so what was decided a moment ago is already there, and every event is
//! read exactly once even while the archiver copies and trims underneath.
//!
//! The archive is written by the `archiver` crate (which owns its schema and retention); the
//! streams by `limiter`. This crate only reads both: `smsgate replay`, `smsgate audit`, the
//! projections' rebuild, and the operator routes `/api/history` and `/api/audit`.
//!
//! # Layout
//! - `replay`: [`Replay`], the merged reader: archive and stream, every event once, in order,
//!   optionally following the stream live.
//! - `audit`: [`Auditor`] re-derives recorded decisions with the policy model; [`WhatIf`] runs
//!   another policy over the same sequence.
//! - `history`: [`history()`], volumes per hour or day from the archive and the tail.
//! - `json`: the Event JSON and table line of replay and the routes.
//! - `http`: [`router`], `/api/history` and `/api/audit`, and their OpenAPI [`ApiDoc`].
//! - `error`: [`LedgerError`].

mod audit;
mod error;
mod history;
mod http;
mod json;
mod replay;

pub use audit::{
    AuditSummary, Auditor, Mismatch, STREAM_TIME_TOLERANCE_MS, Verdict, WhatIf, WhatIfSummary,
};
pub use error::LedgerError;
pub use history::{Bucket, BucketCounts, History, Tail, counted, history};
pub use http::{
    ApiDoc, AuditJson, DEFAULT_AUDIT_LIMIT, LedgerApi, MAX_AUDIT_LIMIT, MAX_BUCKETS, router,
};
pub use json::{event_json, table_header, table_line};
pub use replay::{
    ARCHIVE_PAGE, Filter, Origin, Replay, ReplayOptions, Replayed, STREAM_PAGE, StreamId,
};
