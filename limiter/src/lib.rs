//! The write side of smsgate's event log.
//!
//! `limiter` owns everything that decides whether a client may send an SMS and that writes the
//! event stream: the rate-limit policy, the one atomic Lua script that checks every window and
//! appends the decision as an event, the `Event` type with its MessagePack encoding, and the
//! Redis key layout. It is the only code that writes the stream; every other role reads it.
//!
//! # Layout
//! - [`policy`]: `Policy` and `Window`, parsed from `SMSGATE_LIMITS` (`3/1m,10/1d`).
//! - [`event`]: the `Event` recorded for every decision, and its `Outcome`.
//! - [`codec`]: Event ⇄ MessagePack (a self-describing map with a schema version).
//! - [`json`]: the JSON view of an Event that operators read.
//! - [`layout`]: key names, namespaces, hash-tagged partitions.
//! - [`openapi`]: the problem+json schema and error responses every crate's routes share.
//! - [`model`]: a pure-Rust model of the policy, the reference the script is tested and audited against.
//! - [`gate`]: `RateLimiter`, which runs the Lua script and returns a `Decision`.
//! - [`connection`]: Redis pools that reconnect forever and never retry a command.

pub mod codec;
pub mod connection;
pub mod event;
pub mod gate;
pub mod json;
pub mod layout;
pub mod model;
pub mod openapi;
pub mod policy;

pub use event::{Event, Outcome};
pub use gate::{Decision, LimiterError, RateLimiter, SmsRequest, WindowState};
pub use layout::Layout;
pub use policy::{Policy, Window};
