//! The `smsgate` binary's library: configuration, telemetry and the composition of the roles.
//!
//! `smsgate serve` runs every role in one process on one port; `smsgate ingest|projector|archiver`
//! run one role each so they scale out independently. The roles never call each other: they
//! meet on the event stream, and this crate is the only place that wires them together.
//!
//! # Layout
//! - [`cli`]: the command line and its settings (every flag also an environment variable).
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`app`]: `App`: connects, composes the routers of the chosen roles, serves, shuts down.
//! - [`auth`]: the admin token, server-side sessions, login and logout, throttled failures.
//! - [`server`]: the accept loop: header, body and request timeouts, connection and request caps.
//! - [`problems`]: every error as problem+json; the security headers of every response.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`openapi`]: the OpenAPI document, generated from every crate's handlers.
//! - [`dashboard`]: the built React dashboard at `/`.
//! - [`roles`]: how each role is started inside `App`.
//! - [`replay`]: `smsgate replay` and `smsgate audit`, wired to the ledger's reader and auditor.
//! - [`bench`]: `smsgate bench`, the load generator and its Redis-only baseline.

pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod dashboard;
pub mod health;
pub mod openapi;
pub mod problems;
pub mod replay;
pub mod roles;
pub mod server;
pub mod telemetry;

pub use app::{App, Roles};
pub use cli::Settings;
