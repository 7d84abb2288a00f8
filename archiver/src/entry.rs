//! The wire side of the archiver: Redis stream replies → [`StreamEntry`], and a stream entry →
//! the [`Row`] that goes into `sms_events`. Nothing here talks to Redis or Postgres.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use fred::types::Value;
use limiter::codec::{self, EVENT_FIELD};
use uuid::Uuid;

use crate::error::ArchiverError;

/// What a stream entry carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The encoded event (field `e`).
    Event(Vec<u8>),
    /// An entry without an `e` field: not written by the limiter.
    NoEventField,
    /// The entry is still pending but no longer on the stream (deleted by hand).
    Deleted,
}

/// One entry read from a partition's stream through the consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub partition: u16,
    /// The stream entry id, `<ms>-<seq>`.
    pub id: String,
    pub payload: Payload,
}

impl StreamEntry {
    /// The raw bytes worth keeping in a dead letter.
    pub fn raw(&self) -> &[u8] {
        match &self.payload {
            Payload::Event(bytes) => bytes,
            _ => &[],
        }
    }

    /// Decodes the entry into the row to archive, or says why it cannot be archived.
    pub fn to_row(&self) -> Result<Row, String> {
        let bytes = match &self.payload {
            Payload::Event(bytes) => bytes,
            Payload::NoEventField => return Err(format!("no `{EVENT_FIELD}` field")),
            Payload::Deleted => return Err("entry deleted from the stream".into()),
        };
        let event = codec::decode(bytes).map_err(|e| format!("undecodable: {e}"))?;
        Row::new(self.partition, &self.id, event)
    }
}

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
    /// Checks what no row can hold, so one bad event is dead-lettered alone instead of failing
    /// its whole batch: window names with a comma (the insert ships `violated` comma-joined),
    /// numbers out of column range. Text is kept as it is; the store writes what Postgres
    /// `text` can hold (see `store::storable`).
    pub fn new(partition: u16, stream_id: &str, event: limiter::Event) -> Result<Self, String> {
        let at = DateTime::from_timestamp_micros(event.at_us)
            .ok_or_else(|| format!("decision time {} µs is out of range", event.at_us))?;
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
            to: event.to,
            from: event.from,
            message: event.message,
            violated: event.violated,
            policy: event.policy,
        })
    }
}

/// Parses the reply of `XREADGROUP … STREAMS <one stream> <id>` (RESP2 or RESP3).
pub fn parse_read_reply(partition: u16, reply: Value) -> Result<Vec<StreamEntry>, ArchiverError> {
    let per_stream = match reply {
        Value::Null => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                other => Err(unexpected("XREADGROUP stream", &other)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(map) => map.inner().into_values().collect(),
        other => return Err(unexpected("XREADGROUP", &other)),
    };
    let mut entries = Vec::new();
    for list in per_stream {
        entries.extend(parse_entries(partition, list)?);
    }
    Ok(entries)
}

/// Parses the reply of `XAUTOCLAIM` (Redis 7: cursor, entries, deleted ids): the next cursor
/// (`0-0` when the scan is complete) and the claimed entries.
pub fn parse_autoclaim_reply(
    partition: u16,
    reply: Value,
) -> Result<(String, Vec<StreamEntry>), ArchiverError> {
    let Value::Array(mut parts) = reply else {
        return Err(unexpected("XAUTOCLAIM", &reply));
    };
    if parts.len() < 2 {
        return Err(ArchiverError::Reply(format!(
            "XAUTOCLAIM: {} elements",
            parts.len()
        )));
    }
    let entries = parse_entries(partition, parts.swap_remove(1))?;
    let cursor = parts[0]
        .as_string()
        .ok_or_else(|| unexpected("XAUTOCLAIM cursor", &parts[0]))?;
    Ok((cursor, entries))
}

/// A list of `[id, [field, value, …] | nil]` entries.
fn parse_entries(partition: u16, list: Value) -> Result<Vec<StreamEntry>, ArchiverError> {
    let items = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(unexpected("stream entries", &other)),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(mut pair) = item else {
                return Err(unexpected("stream entry", &item));
            };
            if pair.len() != 2 {
                return Err(ArchiverError::Reply(format!(
                    "stream entry with {} elements",
                    pair.len()
                )));
            }
            let fields = pair.swap_remove(1);
            let id = pair[0]
                .as_string()
                .ok_or_else(|| unexpected("entry id", &pair[0]))?;
            let payload = match fields {
                Value::Null => Payload::Deleted,
                Value::Array(flat) => find_event(flat.chunks(2).filter_map(|kv| match kv {
                    [k, v] => Some((k.clone(), v.clone())),
                    _ => None,
                })),
                Value::Map(map) => find_event(
                    map.inner()
                        .into_iter()
                        .map(|(k, v)| (Value::from(k.as_str_lossy().to_string()), v)),
                ),
                other => return Err(unexpected("entry fields", &other)),
            };
            Ok(StreamEntry {
                partition,
                id,
                payload,
            })
        })
        .collect()
}

fn find_event(mut fields: impl Iterator<Item = (Value, Value)>) -> Payload {
    fields
        .find(|(k, _)| k.as_bytes() == Some(EVENT_FIELD.as_bytes()))
        .and_then(|(_, v)| v.into_owned_bytes())
        .map_or(Payload::NoEventField, Payload::Event)
}

fn unexpected(what: &str, value: &Value) -> ArchiverError {
    ArchiverError::Reply(format!("{what}: unexpected {:?}", value.kind()))
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

    fn entry(payload: Payload) -> StreamEntry {
        StreamEntry {
            partition: 3,
            id: "1-0".into(),
            payload,
        }
    }

    #[test]
    fn an_event_becomes_a_row_with_every_field_and_exact_microseconds() {
        let e = event();
        let row = entry(Payload::Event(codec::encode(&e))).to_row().unwrap();
        assert_eq!(row.id, e.id);
        assert_eq!(row.partition, 3);
        assert_eq!(row.at.timestamp_micros(), e.at_us);
        assert_eq!(row.violated, ["1m", "1d"]);
        assert_eq!(row.outcome, "rejected");
        assert_eq!(row.from.as_deref(), Some("Acme"));
    }

    #[test]
    fn entries_postgres_would_refuse_are_reasons_not_rows() {
        assert!(entry(Payload::Deleted).to_row().is_err());
        assert!(entry(Payload::NoEventField).to_row().is_err());
        assert!(
            entry(Payload::Event(b"\xc1junk".to_vec()))
                .to_row()
                .is_err()
        );
        // A NUL is text like any other here: the store makes it storable.
        let nul = Event {
            message: "a\0b".into(),
            ..event()
        };
        let row = entry(Payload::Event(codec::encode(&nul))).to_row().unwrap();
        assert_eq!(row.message, "a\0b");
        let far = Event {
            at_us: i64::MAX,
            ..event()
        };
        assert!(entry(Payload::Event(codec::encode(&far))).to_row().is_err());
    }

    #[test]
    fn read_replies_parse_in_resp2_shape_including_deleted_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::from("ns:{0}:events"),
            Value::Array(vec![
                Value::Array(vec![
                    Value::from("5-0"),
                    Value::Array(vec![Value::from("e"), Value::Bytes(vec![1, 2].into())]),
                ]),
                Value::Array(vec![Value::from("6-0"), Value::Null]),
                Value::Array(vec![
                    Value::from("7-0"),
                    Value::Array(vec![Value::from("x"), Value::from("y")]),
                ]),
            ]),
        ])]);
        let entries = parse_read_reply(0, reply).unwrap();
        assert_eq!(
            entries.iter().map(|e| &e.payload).collect::<Vec<_>>(),
            [
                &Payload::Event(vec![1, 2]),
                &Payload::Deleted,
                &Payload::NoEventField
            ]
        );
        assert_eq!(entries[1].id, "6-0");
        assert!(parse_read_reply(0, Value::Null).unwrap().is_empty());
    }
}
