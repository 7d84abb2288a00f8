//! [`Entry`]: one stream entry as a role receives it: where it stands in the log, how often it
//! was delivered, the payload exactly as stored, and the event decoded with limiter's codec.
//! Decoding lives here and nowhere else; a role only ever sees entries that decoded.

use bytes::Bytes;
use limiter::Event;
use limiter::codec::EVENT_FIELD;
use limiter::delivery::{Record, StatusEvent, decode_record};

use crate::id::StreamId;
use crate::reply::RawEntry;

/// One decoded entry of a partition's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub partition: u16,
    pub id: StreamId,
    /// How often the group has delivered this entry, this delivery included (1 when new).
    pub deliveries: u64,
    /// The `e` field exactly as stored, which is what a dead letter keeps.
    pub raw: Bytes,
    /// A decision, or a delivery status change (`limiter::delivery`).
    pub record: Record,
}

impl Entry {
    /// The decision, when the entry is one.
    pub fn event(&self) -> Option<&Event> {
        match &self.record {
            Record::Decision(event) => Some(event),
            Record::Status(_) => None,
        }
    }

    /// The delivery status change, when the entry is one.
    pub fn status(&self) -> Option<&StatusEvent> {
        match &self.record {
            Record::Status(status) => Some(status),
            Record::Decision(_) => None,
        }
    }
}

/// A read entry before decoding: either an [`Entry`], or why no role can apply it.
// Almost every entry is an event, so boxing it would allocate per entry to shrink the rare case.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Event(Entry),
    /// Not an event this build understands; the payload (possibly empty) is kept.
    Undecodable {
        id: StreamId,
        raw: Bytes,
        reason: String,
    },
    /// Still pending, but deleted from the stream: nothing left to apply or keep.
    Gone {
        id: StreamId,
    },
}

impl Decoded {
    /// Decodes one read entry of `partition`, delivered `deliveries` times.
    pub fn new(partition: u16, raw: RawEntry, deliveries: u64) -> Self {
        let id = raw.id;
        let Some(fields) = raw.fields else {
            return Self::Gone { id };
        };
        let Some(payload) = fields.get(EVENT_FIELD).cloned() else {
            return Self::Undecodable {
                id,
                raw: Bytes::new(),
                reason: format!("no `{EVENT_FIELD}` field"),
            };
        };
        match decode_record(&payload) {
            Ok(record) => Self::Event(Entry {
                partition,
                id,
                deliveries,
                raw: payload,
                record,
            }),
            Err(e) => Self::Undecodable {
                id,
                raw: payload,
                reason: format!("undecodable: {e}"),
            },
        }
    }

    pub fn id(&self) -> StreamId {
        match self {
            Self::Event(entry) => entry.id,
            Self::Undecodable { id, .. } | Self::Gone { id } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use limiter::codec;
    use limiter::delivery::{DeliveryStatus, encode_status};
    use limiter::{Outcome, event::SCHEMA_VERSION};

    use super::*;

    fn raw(fields: Option<&[(&str, &[u8])]>) -> RawEntry {
        RawEntry {
            id: "1-0".parse().unwrap(),
            fields: fields.map(|f| {
                f.iter()
                    .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
                    .collect::<HashMap<_, _>>()
            }),
        }
    }

    #[test]
    fn events_decode_with_their_payload_and_garbage_keeps_its_bytes() {
        let event = Event {
            v: SCHEMA_VERSION,
            id: uuid::Uuid::now_v7(),
            at_us: 1_764_313_000_123_456,
            ip: "2001:db8::7".parse().unwrap(),
            to: "+14155550123".into(),
            from: None,
            message: "héllo".into(),
            stored: None,
            segments: 1,
            outcome: Outcome::Accepted,
            violated: vec![],
            retry_after: 0,
            policy: "3/1m,10/1d".into(),
            shadow_violated: vec![],
            reason: None,
            country: None,
            client: None,
            api_client: None,
            ip_unattributed: false,
        };
        let bytes = codec::encode(&event);
        let Decoded::Event(entry) = Decoded::new(3, raw(Some(&[("e", &bytes)])), 2) else {
            panic!("an event decodes");
        };
        assert_eq!((entry.partition, entry.deliveries), (3, 2));
        assert_eq!(entry.event(), Some(&event));
        assert_eq!(entry.raw, bytes);
        let status = StatusEvent::new(event.id, &event.to, DeliveryStatus::Sent, "log");
        let bytes = encode_status(&status);
        let Decoded::Event(entry) = Decoded::new(3, raw(Some(&[("e", &bytes)])), 1) else {
            panic!("a status event decodes");
        };
        assert_eq!(entry.status(), Some(&status));
        assert_eq!(entry.event(), None);

        let Decoded::Undecodable {
            raw: kept, reason, ..
        } = Decoded::new(0, raw(Some(&[("e", b"\xc1junk")])), 1)
        else {
            panic!("garbage is undecodable");
        };
        assert_eq!(&kept[..], b"\xc1junk");
        assert!(reason.starts_with("undecodable"), "{reason}");
        assert!(matches!(
            Decoded::new(0, raw(Some(&[("x", b"y")])), 1),
            Decoded::Undecodable { reason, .. } if reason.contains("no `e` field")
        ));
        assert!(matches!(
            Decoded::new(0, raw(None), 1),
            Decoded::Gone { .. }
        ));
    }
}
