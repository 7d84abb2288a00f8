//! The JSON view of an [`Event`] that operators read (`docs/operator-api.md`): the dashboard's
//! API and live feed, replay's JSON lines and the audit endpoint all print this one shape.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::event::{Event, Outcome};
use crate::privacy::StoredForm;

/// RFC 3339 UTC with microseconds, e.g. `2026-11-28T07:00:00.123456Z`.
pub fn rfc3339_micros(at_us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(at_us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The OpenAPI schema of an IP address as text: IPv4 or IPv6.
pub struct IpAddrSchema;

impl utoipa::PartialSchema for IpAddrSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let text = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
        };
        OneOfBuilder::new()
            .item(text(KnownFormat::Ipv4))
            .item(text(KnownFormat::Ipv6))
            .into()
    }
}

impl utoipa::ToSchema for IpAddrSchema {}

/// One event as JSON, borrowing from the event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventJson<'a> {
    #[schema(format = "uuid")]
    pub id: String,
    /// Where the entry stood on its partition's stream, `<ms>-<seq>`.
    pub stream_id: String,
    /// Replay and audit say where the event stood; the live views leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u16>,
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(value_type = IpAddrSchema)]
    pub ip: IpAddr,
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub message: &'a str,
    /// The form `message` is kept in (`full`, `redacted`, `preview`, `none`); absent on events
    /// recorded before smsgate said (they hold the body as sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_stored: Option<StoredForm>,
    pub segments: u32,
    pub outcome: Outcome,
    pub violated: &'a [String],
    pub retry_after: u64,
    /// Windows of shadow rules that would have refused (only when some would have).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub shadow_violated: &'a [String],
    /// Why a `blocked` request was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'a str>,
    /// The API client (account SID) of a request through the Twilio-compatible API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_client: Option<&'a str>,
    /// True when `ip` is the API client's own address, not its end user's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ip_unattributed: bool,
}

impl<'a> EventJson<'a> {
    pub fn new(stream_id: impl ToString, event: &'a Event) -> Self {
        Self {
            id: event.id.to_string(),
            stream_id: stream_id.to_string(),
            partition: None,
            at: rfc3339_micros(event.at_us),
            ip: event.ip,
            to: &event.to,
            from: event.from.as_deref(),
            message: &event.message,
            message_stored: event.stored,
            segments: event.segments,
            outcome: event.outcome,
            violated: &event.violated,
            retry_after: event.retry_after,
            shadow_violated: &event.shadow_violated,
            reason: event.reason.as_deref(),
            country: event.country.as_deref(),
            policy: None,
            api_client: event.api_client.as_deref(),
            ip_unattributed: event.ip_unattributed,
        }
    }

    /// Adds the partition and the policy in force, for replay and audit.
    pub fn with_provenance(mut self, partition: u16, event: &'a Event) -> Self {
        self.partition = Some(partition);
        self.policy = Some(&event.policy);
        self
    }
}
