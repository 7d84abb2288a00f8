//! The wire shapes of replay and the archive routes: the Event JSON of `docs/operator-api.md`
//! (plus `partition` and `policy`, which replay and audit need), and the readable table line.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use limiter::Outcome;
use serde::Serialize;

use crate::replay::Replayed;

/// RFC 3339 UTC with microseconds, e.g. `2026-11-28T07:00:00.123456Z`.
pub fn rfc3339_micros(at_us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(at_us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One event as JSON: the shape the dashboard reads, and one line of `smsgate replay`.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    pub id: String,
    pub stream_id: String,
    pub partition: u16,
    pub at: String,
    pub ip: IpAddr,
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub message: &'a str,
    pub segments: u32,
    pub outcome: Outcome,
    pub violated: &'a [String],
    pub retry_after: u64,
    pub policy: &'a str,
}

impl<'a> From<&'a Replayed> for EventJson<'a> {
    fn from(item: &'a Replayed) -> Self {
        let e = &item.event;
        Self {
            id: e.id.to_string(),
            stream_id: item.stream_id.to_string(),
            partition: item.partition,
            at: rfc3339_micros(e.at_us),
            ip: e.ip,
            to: &e.to,
            from: e.from.as_deref(),
            message: &e.message,
            segments: e.segments,
            outcome: e.outcome,
            violated: &e.violated,
            retry_after: e.retry_after,
            policy: &e.policy,
        }
    }
}

/// The header of [`table_line`].
pub fn table_header() -> String {
    format!(
        "{:<27} {:>3} {:<20} {:<39} {:<16} {:<8} {:<10} {:>5} {:>3}  {}",
        "AT", "P", "STREAM ID", "IP", "TO", "OUTCOME", "VIOLATED", "RETRY", "SEG", "MESSAGE"
    )
}

/// One event as a fixed-width line for people; the message is cut at 40 characters.
pub fn table_line(item: &Replayed, out: &mut String) {
    let e = &item.event;
    let mut message: String = e.message.chars().take(40).collect();
    if e.message.chars().count() > 40 {
        message.push('…');
    }
    let message = message.replace(['\n', '\r', '\t'], " ");
    let _ = write!(
        out,
        "{:<27} {:>3} {:<20} {:<39} {:<16} {:<8} {:<10} {:>5} {:>3}  {}",
        rfc3339_micros(e.at_us),
        item.partition,
        item.stream_id.to_string(),
        e.ip.to_string(),
        e.to,
        e.outcome.as_str(),
        e.violated.join(","),
        e.retry_after,
        e.segments,
        message
    );
}
