//! Event ⇄ MessagePack. The wire format is a self-describing map (field names, not positions)
//! carrying a schema version, so the Lua script can append the decision's entries to ingest's
//! and old entries stay readable as fields are added.

use serde::Serialize;
use uuid::Uuid;

use crate::event::{Event, SCHEMA_VERSION};

/// The stream entry field that holds the encoded event.
pub const EVENT_FIELD: &str = "e";

/// The part of an event ingest knows before the decision; the script completes it with the
/// decision and the body in the form the outcome keeps (`message`, `stored`).
#[derive(Debug, Serialize)]
pub struct PendingEvent<'a> {
    pub v: u32,
    #[serde(with = "as_string")]
    pub id: Uuid,
    /// The address as text (ingest has written it out already).
    pub ip: &'a str,
    pub to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    pub segments: u32,
    pub policy: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'a str>,
    /// Only when it is not `<ip>|<to>` (an IPv6 network, a masked IPv4 prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'a str>,
    /// The client's `status_callback` URL; only the dispatcher reads it
    /// ([`crate::delivery::Deliverable`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_client: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ip_unattributed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid event map: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    #[error("unknown event schema version {0}")]
    UnknownVersion(u32),
}

/// A [`PendingEvent`] as the entries of a MessagePack map without the map's header, and how
/// many there are: the script appends the decision's entries and writes the header for all of
/// them, so it never decodes and re-encodes what ingest wrote.
#[derive(Clone, Debug)]
pub struct PendingFields {
    pub entries: u32,
    pub bytes: Vec<u8>,
}

pub fn encode_pending(event: &PendingEvent<'_>) -> PendingFields {
    map_entries(event)
}

/// The body as an outcome keeps it (`message`, and the name of its form in `stored`): the
/// entries the script appends for that outcome as they are.
#[derive(Debug, Serialize)]
pub struct StoredMessage<'a> {
    pub message: &'a str,
    pub stored: &'a str,
}

pub fn encode_stored(stored: &StoredMessage<'_>) -> PendingFields {
    map_entries(stored)
}

/// `value` (a struct) as the entries of a MessagePack map, without the map's header.
fn map_entries(value: &impl Serialize) -> PendingFields {
    // Room for an event's fields at once: growing from empty costs a dozen reallocations.
    let mut bytes = Vec::with_capacity(384);
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut bytes).with_struct_map())
        .expect("these structs always serialize");
    let (entries, header) = match bytes[0] {
        fixmap @ 0x80..=0x8f => (u32::from(fixmap & 0x0f), 1),
        0xde => (u32::from(u16::from_be_bytes([bytes[1], bytes[2]])), 3),
        other => unreachable!(
            "a struct of 16 fields at most serializes as fixmap or map16, not {other:#x}"
        ),
    };
    bytes.drain(..header);
    PendingFields { entries, bytes }
}

/// Encodes a whole event the way the script would have written it (used by tests and tools
/// that build streams without Redis).
pub fn encode(event: &Event) -> Vec<u8> {
    rmp_serde::to_vec_named(event).expect("an Event always serializes")
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let event: Event = rmp_serde::from_slice(bytes)?;
    if event.v != SCHEMA_VERSION {
        return Err(DecodeError::UnknownVersion(event.v));
    }
    Ok(event)
}

/// Serde through `Display`/`FromStr`: UUIDs and IPs travel as text, the form every reader of
/// the stream (and `redis-cli`) can show.
pub mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;

    fn sample() -> Event {
        Event {
            v: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            at_us: 1_764_313_000_123_456,
            ip: "203.0.113.7".parse().unwrap(),
            to: "+14155550123".into(),
            from: None,
            message: "héllo ✓".into(),
            stored: None,
            segments: 1,
            outcome: Outcome::Rejected,
            violated: vec!["1m".into()],
            retry_after: 37,
            policy: "3/1m,10/1d".into(),
            shadow_violated: vec![],
            reason: None,
            country: None,
            client: None,
            api_client: None,
            ip_unattributed: false,
        }
    }

    #[test]
    fn events_round_trip_through_messagepack() {
        let event = sample();
        assert_eq!(decode(&encode(&event)).unwrap(), event);
        let with_sender = Event {
            from: Some("Acme".into()),
            ..sample()
        };
        assert_eq!(decode(&encode(&with_sender)).unwrap(), with_sender);
        let from_an_api_client = Event {
            api_client: Some("AC0123456789abcdef0123456789abcdef".into()),
            ip_unattributed: true,
            ..sample()
        };
        assert_eq!(
            decode(&encode(&from_an_api_client)).unwrap(),
            from_an_api_client
        );
    }

    #[test]
    fn the_encoding_is_a_map_with_field_names() {
        let bytes = encode(&sample());
        let is_map = matches!(bytes[0], 0x80..=0x8f | 0xde | 0xdf);
        assert!(
            is_map,
            "first byte {:#x} is not a MessagePack map",
            bytes[0]
        );
        for name in [
            "v",
            "id",
            "at_us",
            "outcome",
            "violated",
            "retry_after",
            "policy",
        ] {
            assert!(contains(&bytes, name.as_bytes()), "field {name} missing");
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let future = Event {
            v: SCHEMA_VERSION + 1,
            ..sample()
        };
        assert!(matches!(
            decode(&encode(&future)),
            Err(DecodeError::UnknownVersion(_))
        ));
        assert!(matches!(
            decode(b"\xc1garbage"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
