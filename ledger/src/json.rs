//! The wire shapes of replay and the archive routes: the Event JSON of `docs/operator-api.md`
//! (plus `partition` and `policy`, which replay and audit need), and the readable table line.

use std::fmt::Write as _;

use crate::replay::Replayed;

pub use limiter::json::{EventJson, rfc3339_micros};

/// One replayed event as JSON, with the partition and policy replay and audit need.
pub fn event_json(item: &Replayed) -> EventJson<'_> {
    EventJson::new(item.stream_id, &item.event).with_provenance(item.partition, &item.event)
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
