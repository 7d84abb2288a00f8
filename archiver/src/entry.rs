//! A decoded stream entry → the [`Row`] that goes into `sms_events`. Reading and decoding the
//! stream is the engine's (`eventlog`); nothing here talks to Redis or Postgres.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One `sms_events` row, exactly as the event stood on the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub id: Uuid,
    pub stream_id: String,
    pub partition: i16,
    pub at: DateTime<Utc>,
    pub at_us: i64,
    pub ip: IpAddr,
    pub to: String,
    pub from: Option<String>,
    pub message: String,
    pub segments: i32,
    pub outcome: &'static str,
    pub violated: Vec<String>,
    pub retry_after: i64,
    pub policy: String,
}

impl Row {
    /// Checks everything Postgres would refuse, so one bad event is dead-lettered alone instead
    /// of failing its whole batch: NUL characters (not storable in `text`), window names with a
    /// comma (the insert ships `violated` comma-joined), numbers out of column range.
    pub fn new(partition: u16, stream_id: &str, event: &limiter::Event) -> Result<Self, String> {
        let at = DateTime::from_timestamp_micros(event.at_us)
            .ok_or_else(|| format!("decision time {} µs is out of range", event.at_us))?;
        let texts = [&event.to, &event.message, &event.policy]
            .into_iter()
            .chain(event.from.as_ref())
            .chain(event.violated.iter());
        for text in texts {
            if text.contains('\0') {
                return Err("a text field contains a NUL character".into());
            }
        }
        if event
            .violated
            .iter()
            .any(|w| w.contains(',') || w.is_empty())
        {
            return Err(format!("invalid window name in {:?}", event.violated));
        }
        Ok(Self {
            id: event.id,
            stream_id: stream_id.to_owned(),
            partition: i16::try_from(partition).map_err(|_| "partition out of range")?,
            at,
            at_us: event.at_us,
            ip: event.ip,
            segments: i32::try_from(event.segments).map_err(|_| "segments out of range")?,
            outcome: event.outcome.as_str(),
            retry_after: i64::try_from(event.retry_after)
                .map_err(|_| "retry_after out of range")?,
            to: event.to.clone(),
            from: event.from.clone(),
            message: event.message.clone(),
            violated: event.violated.clone(),
            policy: event.policy.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use limiter::{Event, Outcome, event::SCHEMA_VERSION};

    use super::*;

    fn event() -> Event {
        Event {
            v: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            at_us: 1_764_313_000_123_456,
            ip: "2001:db8::7".parse().unwrap(),
            to: "+14155550123".into(),
            from: Some("Acme".into()),
            message: "héllo".into(),
            segments: 1,
            outcome: Outcome::Rejected,
            violated: vec!["1m".into(), "1d".into()],
            retry_after: 37,
            policy: "3/1m,10/1d".into(),
        }
    }

    #[test]
    fn an_event_becomes_a_row_with_every_field_and_exact_microseconds() {
        let e = event();
        let row = Row::new(3, "1-0", &e).unwrap();
        assert_eq!(row.id, e.id);
        assert_eq!(row.partition, 3);
        assert_eq!(row.at.timestamp_micros(), e.at_us);
        assert_eq!(row.violated, ["1m", "1d"]);
        assert_eq!(row.outcome, "rejected");
        assert_eq!(row.from.as_deref(), Some("Acme"));
    }

    #[test]
    fn events_postgres_would_refuse_are_reasons_not_rows() {
        let nul = Event {
            message: "a\0b".into(),
            ..event()
        };
        let reason = Row::new(0, "1-0", &nul).unwrap_err();
        assert!(reason.contains("NUL"), "{reason}");
        let far = Event {
            at_us: i64::MAX,
            ..event()
        };
        assert!(Row::new(0, "1-0", &far).is_err());
        let comma = Event {
            violated: vec!["a,b".into()],
            ..event()
        };
        assert!(Row::new(0, "1-0", &comma).is_err());
    }
}
