//! Dead letters: the one schema every role writes and every tool reads.
//!
//! An entry that no role can apply (undecodable, gone, refused, or delivered more than the
//! cap) is moved to its partition's dead-letter stream `<ns>:{p}:dead` in the same atomic step
//! that acknowledges it, with these fields:
//!
//! ```text
//! group       the consumer group that gave up on it (projector, archiver, …)
//! consumer    the consumer that wrote the dead letter
//! stream_id   the entry's id on the event stream
//! deliveries  how often the group had delivered it
//! reason      why it was set aside
//! payload     the entry's `e` field exactly as stored (empty only when there was none)
//! ```

use std::collections::HashMap;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::Layout;

use crate::LogError;
use crate::id::StreamId;
use crate::reply::parse_entries;

/// Dead-letter streams are capped (approximately) so a flood of garbage cannot exhaust Redis;
/// each dead letter is also logged and counted.
pub const DEAD_LETTER_CAP: u64 = 100_000;

/// One dead letter, as written and as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub group: String,
    pub consumer: String,
    pub stream_id: StreamId,
    pub deliveries: u64,
    pub reason: String,
    pub payload: Bytes,
}

impl DeadLetter {
    /// Reads a dead letter back from the fields of its entry on the dead-letter stream.
    pub fn from_fields(fields: &HashMap<String, Bytes>) -> Result<Self, LogError> {
        let text = |name: &str| {
            fields
                .get(name)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or_else(|| LogError::Reply(format!("dead letter without `{name}`")))
        };
        Ok(Self {
            group: text("group")?,
            consumer: text("consumer")?,
            stream_id: text("stream_id")?
                .parse()
                .map_err(|e: crate::BadStreamId| LogError::Reply(e.to_string()))?,
            deliveries: text("deliveries")?.parse().unwrap_or(0),
            reason: text("reason")?,
            payload: fields.get("payload").cloned().unwrap_or_default(),
        })
    }

    /// The fields after `XADD … *`, in the order of the schema.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("group", self.group.as_str().into()),
            ("consumer", self.consumer.as_str().into()),
            ("stream_id", self.stream_id.to_string().into()),
            ("deliveries", Value::from(self.deliveries.to_string())),
            ("reason", self.reason.as_str().into()),
            ("payload", Value::Bytes(self.payload.clone())),
        ]
    }
}

/// Every dead letter of `partition`, oldest first, with its id on the dead-letter stream.
pub async fn read_dead_letters(
    redis: &Client,
    layout: &Layout,
    partition: u16,
) -> Result<Vec<(StreamId, DeadLetter)>, LogError> {
    let reply: Value = redis
        .xrange(layout.dead_letters(partition), "-", "+", None)
        .await?;
    parse_entries(reply)?
        .into_iter()
        .map(|raw| {
            let fields = raw.fields.unwrap_or_default();
            Ok((raw.id, DeadLetter::from_fields(&fields)?))
        })
        .collect()
}
