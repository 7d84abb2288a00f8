//! The event recorded on the stream for every decision, accepted or rejected.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::as_string;
use crate::privacy::StoredForm;

/// Bumped whenever a field changes meaning; decoders refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// What the limiter decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Rejected,
    /// Refused outright by `[destinations]` or a denied client; consumes nothing.
    Blocked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Blocked => "blocked",
        }
    }
}

/// One decision as it stands on the stream. Field names are the wire names of the MessagePack
/// map; `at_us`, `outcome`, `violated` and `retry_after` are filled in by the Lua script, the
/// rest by ingest before the script runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version of this map, [`SCHEMA_VERSION`] when written by this code.
    pub v: u32,
    /// UUID v7 minted by ingest; the primary key everywhere downstream.
    #[serde(with = "as_string")]
    pub id: Uuid,
    /// Decision time from Redis `TIME`, microseconds since the Unix epoch.
    pub at_us: i64,
    #[serde(with = "as_string")]
    pub ip: IpAddr,
    /// Destination number in E.164.
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The body in the form `stored` names (see [`crate::privacy`]): the full body only when the
    /// operator chose `full` and the request was accepted.
    pub message: String,
    /// The form `message` is in; absent on events written before it was recorded (they hold
    /// the full body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredForm>,
    pub segments: u32,
    pub outcome: Outcome,
    /// Names of the windows that refused the request (empty when accepted).
    pub violated: Vec<String>,
    /// Whole seconds until the same request would be accepted (0 when accepted).
    pub retry_after: u64,
    /// The policy in force for this decision, e.g. `3/1m,10/1d`, so audits can re-derive it
    /// (a multi-rule policy in `Ruleset`'s compact text).
    pub policy: String,
    /// Windows of shadow rules that would have refused the request (they never refuse).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow_violated: Vec<String>,
    /// Why a `blocked` request was refused: `destination-country`, `number-type` or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The destination's country (ISO 3166 alpha-2) when ingest knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The client as the policy counted it (`<network>|<to>`, the IP masked to its client
    /// network); events written before networks existed lack it and were counted by address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The account SID of the API client that sent the request through the Twilio-compatible
    /// API; absent for `POST /api/sms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_client: Option<String>,
    /// True when `ip` is the API client's own address (it named no end user's IP): rules keyed
    /// on `ip` did not judge this request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_unattributed: bool,
}

impl Event {
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(u64::try_from(self.at_us).unwrap_or_default())
    }

    /// The identity the seed's rule counts against, which also picks the event's partition:
    /// client network and destination number.
    pub fn client_key(&self) -> String {
        self.client
            .clone()
            .unwrap_or_else(|| crate::layout::client_key(&self.ip, &self.to))
    }
}
