//! Stream replies as Redis sends them (RESP2 arrays or RESP3 maps) → [`RawEntry`] lists. The
//! one parser behind every stream reader: the consumer groups, the live feed and replay.

use std::collections::HashMap;

use bytes::Bytes;
use fred::types::Value;

use crate::LogError;
use crate::id::StreamId;

/// One stream entry as read: its id and its fields, `None` when Redis answered nil (an entry
/// still pending but deleted from the stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub id: StreamId,
    pub fields: Option<HashMap<String, Bytes>>,
}

impl RawEntry {
    /// The value of `field`, when the entry has it.
    pub fn field(&self, field: &str) -> Option<&Bytes> {
        self.fields.as_ref()?.get(field)
    }
}

/// XREAD / XREADGROUP: nil (nothing within the block time), or per stream `[name, entries]`
/// (RESP2) or a map of name to entries (RESP3).
pub fn parse_xread(reply: Value) -> Result<Vec<(String, Vec<RawEntry>)>, LogError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Null => return Ok(Vec::new()),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    match (pair.next(), pair.next()) {
                        (Some(name), Some(entries)) => Ok((name, entries)),
                        _ => Err(unexpected("XREAD stream", &Value::Null)),
                    }
                }
                other => Err(unexpected("XREAD stream", &other)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(unexpected("XREAD", &other)),
    };
    pairs
        .into_iter()
        .map(|(name, entries)| {
            let name = name
                .as_string()
                .ok_or_else(|| unexpected("XREAD stream name", &name))?;
            Ok((name, parse_entries(entries)?))
        })
        .collect()
}

/// XAUTOCLAIM (Redis 7: `[cursor, entries, deleted ids]`): the next cursor (`0-0` when the
/// scan is complete) and the claimed entries.
pub fn parse_autoclaim(reply: Value) -> Result<(String, Vec<RawEntry>), LogError> {
    let Value::Array(parts) = reply else {
        return Err(unexpected("XAUTOCLAIM", &reply));
    };
    let mut parts = parts.into_iter();
    let cursor = parts.next().unwrap_or(Value::Null);
    let cursor = cursor
        .as_string()
        .ok_or_else(|| unexpected("XAUTOCLAIM cursor", &cursor))?;
    Ok((cursor, parse_entries(parts.next().unwrap_or(Value::Null))?))
}

/// XRANGE / XREVRANGE, or the entries of one stream in a read reply: `[[id, fields | nil], …]`.
pub fn parse_entries(list: Value) -> Result<Vec<RawEntry>, LogError> {
    let items = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(unexpected("stream entries", &other)),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(pair) = item else {
                return Err(unexpected("stream entry", &item));
            };
            let mut pair = pair.into_iter();
            let id = pair.next().unwrap_or(Value::Null);
            let id = id
                .as_str()
                .and_then(|text| text.parse::<StreamId>().ok())
                .ok_or_else(|| unexpected("entry id", &id))?;
            let fields = match pair.next().unwrap_or(Value::Null) {
                Value::Null => None,
                other => Some(parse_fields(other)?),
            };
            Ok(RawEntry { id, fields })
        })
        .collect()
}

/// Fields of one entry: `[field, value, …]` (RESP2) or a map (RESP3).
fn parse_fields(value: Value) -> Result<HashMap<String, Bytes>, LogError> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Array(flat) => {
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
        other => return Err(unexpected("entry fields", &other)),
    };
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.as_string()?, v.into_bytes()?)))
        .collect())
}

/// A flat `[key, value, …]` (RESP2) or map (RESP3) reply, e.g. one group of XINFO GROUPS.
pub fn parse_map(value: Value) -> HashMap<String, Value> {
    match value {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((Value::from(k).as_string()?, v)))
            .collect(),
        Value::Array(flat) => {
            let mut out = HashMap::new();
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                if let Some(k) = k.as_string() {
                    out.insert(k, v);
                }
            }
            out
        }
        _ => HashMap::new(),
    }
}

fn unexpected(what: &str, value: &Value) -> LogError {
    LogError::Reply(format!("{what}: unexpected {:?}", value.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: Value) -> Value {
        Value::Array(vec![Value::from(id), fields])
    }

    #[test]
    fn read_replies_parse_in_resp2_and_resp3_shapes_including_deleted_entries() {
        let entries = || {
            Value::Array(vec![
                entry(
                    "5-0",
                    Value::Array(vec![Value::from("e"), Value::Bytes(vec![1, 2].into())]),
                ),
                entry("6-0", Value::Null),
                entry(
                    "7-0",
                    Value::Array(vec![Value::from("x"), Value::from("y")]),
                ),
            ])
        };
        let resp2 = Value::Array(vec![Value::Array(vec![
            Value::from("ns:{0}:events"),
            entries(),
        ])]);
        let mut map = fred::types::Map::new();
        map.insert("ns:{0}:events".into(), entries());
        let resp3 = Value::Map(map);
        for reply in [resp2, resp3] {
            let streams = parse_xread(reply).unwrap();
            assert_eq!(streams.len(), 1);
            let (name, entries) = &streams[0];
            assert_eq!(name, "ns:{0}:events");
            assert_eq!(entries[0].field("e").map(|b| &b[..]), Some(&[1u8, 2][..]));
            assert_eq!(entries[1].fields, None);
            assert_eq!(entries[1].id, "6-0".parse().unwrap());
            assert_eq!(entries[2].field("e"), None);
            assert_eq!(entries[2].field("x").map(|b| &b[..]), Some(&b"y"[..]));
        }
        assert!(parse_xread(Value::Null).unwrap().is_empty());
        assert!(parse_xread(Value::from(3)).is_err());
    }

    #[test]
    fn autoclaim_replies_give_the_cursor_and_the_entries() {
        let reply = Value::Array(vec![
            Value::from("0-0"),
            Value::Array(vec![entry("1-1", Value::Array(vec![]))]),
            Value::Array(vec![]),
        ]);
        let (cursor, entries) = parse_autoclaim(reply).unwrap();
        assert_eq!(cursor, "0-0");
        assert_eq!(entries[0].id, "1-1".parse().unwrap());
        assert!(parse_autoclaim(Value::Null).is_err());
    }
}
