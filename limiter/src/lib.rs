//! The write side of smsgate's event log.
//!
//! `limiter` owns everything that decides whether a client may send an SMS and that writes the
//! event stream: the rate-limit policy, the one atomic Lua script that checks every window and
//! appends the decision as an event, the `Event` type with its MessagePack encoding, and the
//! Redis key layout. It is the only code that writes the stream; every other role reads it.
//!
//! # Layout
//! - [`policy`]: `Policy` and `Window`, parsed from `SMSGATE_LIMITS` (`3/1m,10/1d`).
//! - [`rules`]: `Ruleset`, the policy as rules on ip / to / country / prefix / api_client, from
//!   `SMSGATE_POLICY`.
//! - [`event`]: the `Event` recorded for every decision, and its `Outcome`.
//! - [`codec`]: Event ⇄ MessagePack (a self-describing map with a schema version).
//! - [`delivery`]: delivery status events, their decoding beside decisions, and the message
//!   state that `delivery.lua` changes atomically with the stream.
//! - [`privacy`]: `SMSGATE_STORE_MESSAGE`, the form a body is kept in, and redaction.
//! - [`twilio`]: the log in Twilio's words: message SIDs, statuses, error codes, callback targets.
//! - [`json`]: the JSON view of an Event that operators read.
//! - [`layout`]: key names, namespaces, hash-tagged partitions.
//! - [`model`]: a pure-Rust model of the rules, the reference the script is tested and audited against.
//! - [`gate`]: `RateLimiter`, which runs the Lua script and returns a `Decision`.
//! - `batch`: group commit, the decisions of a partition that arrive while earlier ones are
//!   under way sent together in one call of the script.
//! - `cluster`: the reserve/commit protocol that decides a policy whose quotas span slots of a
//!   Redis Cluster, and its scripts (`cluster/*.lua`).
//! - [`connection`]: Redis pools that reconnect forever and never retry a command.
//! - [`segments`]: GSM 03.38 or UCS-2, and the concatenated parts a body is sent as.

mod batch;
mod cluster;
pub mod codec;
pub mod connection;
pub mod delivery;
pub mod event;
pub mod gate;
pub mod json;
pub mod layout;
pub mod model;
pub mod policy;
pub mod privacy;
pub mod rules;
pub mod segments;
pub mod twilio;

pub use batch::{BATCH_SIZE, BATCH_SIZE_BUCKETS};
pub use cluster::{ClusterTiming, HeldDecision};
pub use event::{Event, Outcome};
pub use gate::{
    Context, Decision, Idempotency, LimiterError, RateLimiter, SmsRequest, WindowState,
};
pub use layout::Layout;
pub use policy::{Policy, Window};
pub use privacy::{StoreMessage, StoredForm};
pub use rules::{BlockReason, Destination, Mode, Rule, Ruleset};
