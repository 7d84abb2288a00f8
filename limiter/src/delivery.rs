//! Delivery status: what became of an accepted message after the decision.
//!
//! Every status change is a [`StatusEvent`] on the message's own partition stream, next to its
//! decision, so the projections, the archive, replay and audit read one log. A status event is
//! a MessagePack map like a decision, told apart by `kind = "status"`; [`decode_record`] reads
//! either. [`DeliveryStore`] runs `delivery.lua`, which changes a message's state, appends its
//! history and its status event, and queues the client's callback in one atomic step, so
//! `GET /api/sms/{id}`, the stream and the callbacks never disagree.
//!
//! ```text
//! <ns>:{<p>}:msg:<id>          hash: to, from, body (until final), callback (a CallbackTarget),
//!                              segments, api_client, provider, status, …
//! <ns>:{<p>}:msg:<id>:history  list of JSON {status, at, detail}
//! <ns>:{<p>}:delivery:due      sorted set: message id, score = when it is due (ms)
//! <ns>:{<p>}:callbacks         hash: callback id -> "first ms\ntarget\nbody"
//! <ns>:{<p>}:callbacks:due     sorted set: callback id, score = when it is due (ms)
//! ```

use std::collections::HashMap;
use std::fmt;

use fred::clients::Client;
use fred::interfaces::{HashesInterface, ListInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{self, DecodeError, as_string};
use crate::event::{Event, SCHEMA_VERSION};
use crate::json::rfc3339_micros;
use crate::layout::Layout;
use crate::privacy::StoredForm;
use crate::twilio::{CallbackTarget, TwilioCallback};

/// The Lua source of every delivery state change; see its header for keys and arguments.
pub const DELIVERY_LUA: &str = include_str!("delivery.lua");

/// The `kind` of a status event's map; decisions carry no `kind`.
pub const STATUS_KIND: &str = "status";

/// Where a message stands: `queued → sending → sent → delivered | undelivered | failed | expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Expired,
}

impl DeliveryStatus {
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Undelivered,
        Self::Failed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A final status never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Undelivered | Self::Failed | Self::Expired
        )
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One status change as it stands on the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub v: u32,
    /// Always [`STATUS_KIND`].
    pub kind: String,
    /// This event's own UUID v7 (the archive's key); the message is `message_id`.
    #[serde(with = "as_string")]
    pub id: Uuid,
    #[serde(with = "as_string")]
    pub message_id: Uuid,
    /// When the dispatcher (or the provider's receipt) saw the change, µs since the epoch.
    pub at_us: i64,
    pub to: String,
    pub status: DeliveryStatus,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The attempt this change belongs to (1 for the first send; 0 before any).
    pub attempt: u32,
    /// The provider's error or receipt detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long the provider call took, on the status recorded right after it (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
}

impl StatusEvent {
    pub fn new(message_id: Uuid, to: &str, status: DeliveryStatus, provider: &str) -> Self {
        Self {
            v: SCHEMA_VERSION,
            kind: STATUS_KIND.to_owned(),
            id: Uuid::now_v7(),
            message_id,
            at_us: now_us(),
            to: to.to_owned(),
            status,
            provider: provider.to_owned(),
            provider_id: None,
            attempt: 0,
            detail: None,
            latency_us: None,
        }
    }
}

/// Upper bounds (ms) of the provider-latency histogram the projector keeps per minute; the last
/// bucket is everything slower. Percentiles read from it are these bounds, as Prometheus'
/// histograms give them: coarse, but bounded in memory whatever the traffic.
pub const LATENCY_BOUNDS_MS: [u64; 13] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
];

/// The histogram bucket of a provider call of `latency_us` (`LATENCY_BOUNDS_MS.len()` for the
/// slowest).
pub fn latency_bucket(latency_us: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound * 1000 < latency_us)
}

/// Anything on an event stream: a decision or a delivery status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Decision(Event),
    Status(StatusEvent),
}

#[derive(Deserialize)]
struct Kind {
    v: u32,
    #[serde(default)]
    kind: Option<String>,
}

pub fn encode_status(event: &StatusEvent) -> Vec<u8> {
    rmp_serde::to_vec_named(event).expect("a StatusEvent always serializes")
}

/// Decodes a stream entry's `e` field, whichever kind of record it holds.
pub fn decode_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    let kind: Kind = rmp_serde::from_slice(bytes)?;
    if kind.v != SCHEMA_VERSION {
        return Err(DecodeError::UnknownVersion(kind.v));
    }
    match kind.kind.as_deref() {
        None => codec::decode(bytes).map(Record::Decision),
        Some(STATUS_KIND) => Ok(Record::Status(rmp_serde::from_slice(bytes)?)),
        Some(_) => Err(DecodeError::UnknownVersion(kind.v)),
    }
}

/// What the dispatcher needs of a decision: the message and where to report on it. Decoded from
/// the decision's own map (fields the dispatcher does not need are skipped).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Deliverable {
    #[serde(with = "as_string")]
    pub id: Uuid,
    pub at_us: i64,
    pub to: String,
    #[serde(default)]
    pub from: Option<String>,
    /// The body as the event keeps it; the body to send when [`Deliverable::carries_body`],
    /// else it waits under [`Layout::body`] (see [`crate::privacy`]).
    pub message: String,
    #[serde(default)]
    pub stored: Option<StoredForm>,
    #[serde(default)]
    pub segments: u32,
    #[serde(default)]
    pub status_callback: Option<String>,
    /// The API client that sent it (Twilio-compatible API): its callbacks are Twilio's.
    #[serde(default)]
    pub api_client: Option<String>,
}

impl Deliverable {
    /// Where the message's status changes go: an API client's `StatusCallback` in Twilio's
    /// format, `POST /api/sms`'s `status_callback` in smsgate's.
    pub fn callback_target(&self) -> Option<CallbackTarget> {
        let url = self.status_callback.clone()?;
        Some(match &self.api_client {
            Some(account_sid) => CallbackTarget::Twilio(TwilioCallback {
                url,
                account_sid: account_sid.clone(),
                from: self.from.clone(),
            }),
            None => CallbackTarget::Smsgate { url },
        })
    }
}

impl Deliverable {
    /// True when the event itself holds the body to send: `full`, or written before bodies
    /// travelled apart.
    pub fn carries_body(&self) -> bool {
        matches!(self.stored, None | Some(StoredForm::Full))
    }
}

#[derive(Deserialize)]
struct DecisionOutcome {
    v: u32,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    outcome: String,
}

/// The message to deliver, when `bytes` is an accepted decision; `None` for any other record
/// (rejected, blocked, status changes): those are never sent.
pub fn decode_deliverable(bytes: &[u8]) -> Result<Option<Deliverable>, DecodeError> {
    let head: DecisionOutcome = rmp_serde::from_slice(bytes)?;
    if head.v != SCHEMA_VERSION {
        return Err(DecodeError::UnknownVersion(head.v));
    }
    if head.kind.is_some() || head.outcome != "accepted" {
        return Ok(None);
    }
    Ok(Some(rmp_serde::from_slice(bytes)?))
}

/// One line of a message's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeliveryHistoryEntry)]
pub struct HistoryEntry {
    pub status: DeliveryStatus,
    /// RFC 3339 UTC with microseconds.
    pub at: String,
    pub detail: Option<String>,
}

/// A message's delivery state as `delivery.lua` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageState {
    pub partition: u16,
    pub id: Uuid,
    pub to: String,
    pub from: Option<String>,
    /// Gone once the status is final.
    pub body: Option<String>,
    pub segments: u32,
    pub callback: Option<CallbackTarget>,
    /// The API client that sent it, when it came through the Twilio-compatible API.
    pub api_client: Option<String>,
    pub provider: String,
    pub provider_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub queued_at_us: i64,
    /// After this instant the message is `expired` instead of tried again.
    pub deadline_us: i64,
    pub history: Vec<HistoryEntry>,
}

/// A message entering delivery.
#[derive(Clone, Debug)]
pub struct Admission<'a> {
    pub message: &'a Deliverable,
    /// The body to send: the event's own when it carries it, else the one taken from
    /// [`Layout::body`]. Admitting drops that key: from here the message's state holds the
    /// body, until it is sent or final.
    pub body: &'a str,
    pub provider: &'a str,
    pub deadline_us: i64,
    /// When the admitting dispatcher's claim lapses, if it never gets to record an attempt.
    pub due_ms: i64,
}

/// What to do with the message's place on the delivery schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Keep,
    Unschedule,
    DueAt { ms: i64 },
}

/// A status change to record.
#[derive(Clone, Debug)]
pub struct Change {
    pub event: StatusEvent,
    pub schedule: Schedule,
}

/// A client callback taken off the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCallback {
    pub id: String,
    pub first_ms: i64,
    pub target: CallbackTarget,
    /// smsgate's JSON of the change ([`CallbackJson`]); a Twilio target is sent its own form of it.
    pub body: String,
}

/// The JSON a client's `status_callback` receives, and the dashboard's `status` SSE events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = StatusChange)]
pub struct CallbackJson<'a> {
    #[schema(format = "uuid")]
    pub id: String,
    pub to: &'a str,
    pub status: DeliveryStatus,
    pub at: String,
    pub provider: &'a str,
    pub provider_id: Option<&'a str>,
    pub attempt: u32,
    pub detail: Option<&'a str>,
}

impl<'a> CallbackJson<'a> {
    pub fn new(event: &'a StatusEvent) -> Self {
        Self {
            id: event.message_id.to_string(),
            to: &event.to,
            status: event.status,
            at: rfc3339_micros(event.at_us),
            provider: &event.provider,
            provider_id: event.provider_id.as_deref(),
            attempt: event.attempt,
            detail: event.detail.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from the delivery script: {0}")]
    Reply(String),
}

/// Runs `delivery.lua` and reads message state, for one key layout.
#[derive(Clone, Debug)]
pub struct DeliveryStore {
    layout: Layout,
    script: Script,
    /// How long a message's state and history stay readable after its final status.
    keep_secs: u64,
}

impl DeliveryStore {
    /// A week: long enough for a client to look a message up after its final status.
    pub const DEFAULT_KEEP_SECS: u64 = 7 * 86_400;

    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            script: Script::from_lua(DELIVERY_LUA),
            keep_secs: Self::DEFAULT_KEEP_SECS,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn message_key(&self, partition: u16, id: &Uuid) -> String {
        self.layout.key(partition, &format!("msg:{id}"))
    }

    pub fn history_key(&self, partition: u16, id: &Uuid) -> String {
        self.layout.key(partition, &format!("msg:{id}:history"))
    }

    pub fn schedule_key(&self, partition: u16) -> String {
        self.layout.key(partition, "delivery:due")
    }

    pub fn callbacks_key(&self, partition: u16) -> String {
        self.layout.key(partition, "callbacks")
    }

    pub fn callback_schedule_key(&self, partition: u16) -> String {
        self.layout.key(partition, "callbacks:due")
    }

    /// Where an accepted body waits for its admission ([`Layout::body`]).
    pub fn body_key(&self, partition: u16, id: &Uuid) -> String {
        self.layout.body(partition, id)
    }

    /// The bodies of `messages` (same partition) that do not travel in their events, read
    /// in one round trip; `None` where Redis no longer holds it (older than its TTL).
    pub async fn bodies(
        &self,
        redis: &Client,
        partition: u16,
        messages: &[Deliverable],
    ) -> Result<Vec<Option<String>>, DeliveryError> {
        use fred::interfaces::KeysInterface;
        let wanted: Vec<String> = messages
            .iter()
            .filter(|m| !m.carries_body())
            .map(|m| self.body_key(partition, &m.id))
            .collect();
        let mut fetched = if wanted.is_empty() {
            Vec::new()
        } else {
            let values: Vec<Option<String>> = redis.mget(wanted).await?;
            values
        }
        .into_iter();
        Ok(messages
            .iter()
            .map(|m| {
                if m.carries_body() {
                    Some(m.message.clone())
                } else {
                    fetched.next().flatten()
                }
            })
            .collect())
    }

    fn keys(&self, partition: u16, id: Option<&Uuid>) -> Vec<String> {
        // Keys of no message still name one, so every call passes the same seven in one slot.
        let nil = Uuid::nil();
        let id = id.unwrap_or(&nil);
        vec![
            self.layout.stream(partition),
            self.message_key(partition, id),
            self.history_key(partition, id),
            self.schedule_key(partition),
            self.callbacks_key(partition),
            self.callback_schedule_key(partition),
            self.body_key(partition, id),
        ]
    }

    async fn run(
        &self,
        redis: &Client,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, DeliveryError> {
        Ok(self.script.evalsha_with_reload(redis, keys, args).await?)
    }

    /// Creates the message's state as `queued`, claimed until `due_ms`. False when it already
    /// existed (a redelivered decision): its schedule already owns it.
    pub async fn admit(
        &self,
        redis: &Client,
        partition: u16,
        admission: &Admission<'_>,
    ) -> Result<bool, DeliveryError> {
        let m = admission.message;
        let history = history_json(DeliveryStatus::Queued, m.at_us, None);
        let args: Vec<Value> = vec![
            "admit".into(),
            m.id.to_string().into(),
            m.to.as_str().into(),
            m.from.as_deref().unwrap_or("").into(),
            admission.body.into(),
            m.callback_target()
                .map(|t| t.encode())
                .unwrap_or_default()
                .into(),
            admission.provider.into(),
            m.at_us.to_string().into(),
            admission.deadline_us.to_string().into(),
            history.into(),
            admission.due_ms.to_string().into(),
            self.keep_secs.to_string().into(),
            m.segments.to_string().into(),
            m.api_client.as_deref().unwrap_or("").into(),
        ];
        let reply = self
            .run(redis, self.keys(partition, Some(&m.id)), args)
            .await?;
        Ok(reply.as_i64() == Some(1))
    }

    /// Records a status change: state, history, the status event on the stream and the
    /// client's callback, at once. False when nothing changed (unknown or already final
    /// message, or a status that cannot repeat).
    pub async fn change(
        &self,
        redis: &Client,
        partition: u16,
        change: &Change,
    ) -> Result<bool, DeliveryError> {
        Ok(self
            .change_all(redis, partition, std::slice::from_ref(change))
            .await?
            == 1)
    }

    /// Records several changes of one message in order, in one atomic step: all of them, or
    /// (Redis down, a crash) none. Returns how many changed something.
    pub async fn change_all(
        &self,
        redis: &Client,
        partition: u16,
        changes: &[Change],
    ) -> Result<usize, DeliveryError> {
        let Some(first) = changes.first() else {
            return Ok(0);
        };
        let mut args: Vec<Value> = Vec::with_capacity(1 + 11 * changes.len());
        args.push("change".into());
        for change in changes {
            let e = &change.event;
            debug_assert_eq!(e.message_id, first.event.message_id, "one message per call");
            let schedule = match change.schedule {
                Schedule::Keep => String::new(),
                Schedule::Unschedule => "-".to_owned(),
                Schedule::DueAt { ms } => ms.to_string(),
            };
            let callback = serde_json::to_string(&CallbackJson::new(e))
                .map_err(|err| DeliveryError::Reply(err.to_string()))?;
            args.extend([
                Value::Bytes(encode_status(e).into()),
                e.status.as_str().into(),
                e.attempt.to_string().into(),
                e.provider.as_str().into(),
                e.provider_id.as_deref().unwrap_or("").into(),
                history_json(e.status, e.at_us, e.detail.as_deref()).into(),
                schedule.into(),
                self.keep_secs.to_string().into(),
                e.id.to_string().into(),
                callback.into(),
                (e.at_us / 1000).to_string().into(),
            ]);
        }
        let reply = self
            .run(
                redis,
                self.keys(partition, Some(&first.event.message_id)),
                args,
            )
            .await?;
        Ok(reply
            .as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0))
    }

    /// Takes up to `limit` due messages of `partition`, each claimed for `lease_ms`.
    pub async fn claim_due(
        &self,
        redis: &Client,
        partition: u16,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Uuid>, DeliveryError> {
        let args = claim_args("claim", now_ms, lease_ms, limit);
        let reply = self.run(redis, self.keys(partition, None), args).await?;
        strings(reply)?
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| DeliveryError::Reply(format!("{s} is not a message id")))
            })
            .collect()
    }

    /// Drops a message from the schedule whose state is gone.
    pub async fn unschedule(
        &self,
        redis: &Client,
        partition: u16,
        id: &Uuid,
    ) -> Result<(), DeliveryError> {
        let args: Vec<Value> = vec!["unschedule".into(), id.to_string().into()];
        self.run(redis, self.keys(partition, None), args).await?;
        Ok(())
    }

    /// Takes up to `limit` due client callbacks of `partition`, each claimed for `lease_ms`.
    pub async fn claim_callbacks(
        &self,
        redis: &Client,
        partition: u16,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingCallback>, DeliveryError> {
        let args = claim_args("callback_claim", now_ms, lease_ms, limit);
        let reply = strings(self.run(redis, self.keys(partition, None), args).await?)?;
        reply
            .chunks(2)
            .map(|pair| {
                let bad = || DeliveryError::Reply("malformed pending callback".into());
                let [id, value] = pair else { return Err(bad()) };
                let mut parts = value.splitn(3, '\n');
                let first_ms = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let target = parts
                    .next()
                    .and_then(CallbackTarget::parse)
                    .ok_or_else(bad)?;
                let body = parts.next().ok_or_else(bad)?.to_owned();
                Ok(PendingCallback {
                    id: id.clone(),
                    first_ms,
                    target,
                    body,
                })
            })
            .collect()
    }

    /// A callback was answered (or given up on): it leaves the schedule.
    pub async fn callback_done(
        &self,
        redis: &Client,
        partition: u16,
        id: &str,
    ) -> Result<(), DeliveryError> {
        let args: Vec<Value> = vec!["callback_done".into(), id.into()];
        self.run(redis, self.keys(partition, None), args).await?;
        Ok(())
    }

    /// A callback failed: it is due again at `due_ms`.
    pub async fn callback_retry(
        &self,
        redis: &Client,
        partition: u16,
        id: &str,
        due_ms: i64,
    ) -> Result<(), DeliveryError> {
        let args: Vec<Value> = vec![
            "callback_retry".into(),
            id.into(),
            due_ms.to_string().into(),
        ];
        self.run(redis, self.keys(partition, None), args).await?;
        Ok(())
    }

    /// The state of message `id` in `partition`, if it is known there.
    pub async fn load(
        &self,
        redis: &Client,
        partition: u16,
        id: &Uuid,
    ) -> Result<Option<MessageState>, DeliveryError> {
        let fields: HashMap<String, String> =
            redis.hgetall(self.message_key(partition, id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let history: Vec<String> = redis.lrange(self.history_key(partition, id), 0, -1).await?;
        let history = history
            .iter()
            .filter_map(|h| serde_json::from_str(h).ok())
            .collect();
        let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        let number = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let status = fields
            .get("status")
            .and_then(|s| DeliveryStatus::parse(s))
            .ok_or_else(|| DeliveryError::Reply(format!("message {id} has no valid status")))?;
        Ok(Some(MessageState {
            partition,
            id: *id,
            to: text("to").unwrap_or_default(),
            from: text("from"),
            body: fields.get("body").cloned(),
            segments: u32::try_from(number("segments")).unwrap_or(0),
            callback: text("callback").and_then(|c| CallbackTarget::parse(&c)),
            api_client: text("api_client"),
            provider: text("provider").unwrap_or_default(),
            provider_id: text("provider_id"),
            status,
            attempts: u32::try_from(number("attempts")).unwrap_or(0),
            queued_at_us: number("queued_at_us"),
            deadline_us: number("deadline_us"),
            history,
        }))
    }

    /// Finds message `id` in whichever partition holds it (the id alone does not say).
    pub async fn locate(
        &self,
        redis: &Client,
        id: &Uuid,
    ) -> Result<Option<MessageState>, DeliveryError> {
        for partition in 0..self.layout.partitions() {
            if let Some(state) = self.load(redis, partition, id).await? {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }
}

fn claim_args(op: &str, now_ms: i64, lease_ms: i64, limit: usize) -> Vec<Value> {
    vec![
        op.into(),
        now_ms.to_string().into(),
        lease_ms.to_string().into(),
        limit.to_string().into(),
    ]
}

fn history_json(status: DeliveryStatus, at_us: i64, detail: Option<&str>) -> String {
    serde_json::json!({"status": status, "at": rfc3339_micros(at_us), "detail": detail}).to_string()
}

fn strings(reply: Value) -> Result<Vec<String>, DeliveryError> {
    match reply {
        Value::Array(values) => values
            .into_iter()
            .map(|v| {
                v.into_string()
                    .ok_or_else(|| DeliveryError::Reply("not a string".into()))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(DeliveryError::Reply(format!("{other:?}"))),
    }
}

/// Microseconds since the Unix epoch on this machine's clock.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{PendingEvent, encode_pending};
    use crate::event::Outcome;

    fn decision(outcome: Outcome) -> Event {
        Event {
            v: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            at_us: 1_764_313_000_123_456,
            ip: "203.0.113.7".parse().unwrap(),
            to: "+14155550123".into(),
            from: Some("Acme".into()),
            message: "hello".into(),
            stored: None,
            segments: 1,
            outcome,
            violated: vec![],
            retry_after: 0,
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
    fn status_events_round_trip_and_decisions_still_decode() {
        let mut status = StatusEvent::new(
            Uuid::now_v7(),
            "+14155550123",
            DeliveryStatus::Sent,
            "twilio",
        );
        status.provider_id = Some("SM123".into());
        status.attempt = 2;
        status.detail = Some("HTTP 201".into());
        let bytes = encode_status(&status);
        assert_eq!(decode_record(&bytes).unwrap(), Record::Status(status));
        // A status event is not a decision: the decision decoder refuses it.
        assert!(codec::decode(&bytes).is_err());
        assert_eq!(decode_deliverable(&bytes).unwrap(), None);

        let event = decision(Outcome::Accepted);
        let bytes = codec::encode(&event);
        assert_eq!(
            decode_record(&bytes).unwrap(),
            Record::Decision(event.clone())
        );
        let deliverable = decode_deliverable(&bytes).unwrap().unwrap();
        assert_eq!(deliverable.id, event.id);
        assert_eq!(deliverable.from.as_deref(), Some("Acme"));
        assert_eq!(deliverable.status_callback, None);
    }

    #[test]
    fn only_accepted_decisions_are_deliverable() {
        let rejected = codec::encode(&decision(Outcome::Rejected));
        assert_eq!(decode_deliverable(&rejected).unwrap(), None);
    }

    fn rmpv_int(n: i64) -> Vec<u8> {
        rmp_serde::to_vec(&n).unwrap()
    }

    fn rmpv_str(text: &str) -> Vec<u8> {
        rmp_serde::to_vec(text).unwrap()
    }

    #[test]
    fn the_callback_url_travels_in_the_pending_event() {
        let id = Uuid::now_v7();
        let pending = encode_pending(&PendingEvent {
            v: SCHEMA_VERSION,
            id,
            ip: "203.0.113.7",
            to: "+14155550123",
            from: None,
            segments: 1,
            policy: "3/1m",
            reason: None,
            country: None,
            client: None,
            api_client: None,
            ip_unattributed: false,
            status_callback: Some("https://example.com/cb"),
        });
        // What the script does: append the decision's entries and write the map header.
        let mut bytes = vec![0xde, 0, (pending.entries + 6) as u8];
        bytes.extend_from_slice(&pending.bytes);
        for (key, value) in [
            ("at_us", rmpv_int(1)),
            ("outcome", rmpv_str("accepted")),
            ("violated", vec![0x90]),
            ("retry_after", rmpv_int(0)),
            ("message", rmpv_str("hi")),
            ("stored", rmpv_str("full")),
        ] {
            bytes.extend(rmpv_str(key));
            bytes.extend(value);
        }
        let deliverable = decode_deliverable(&bytes).unwrap().unwrap();
        assert_eq!(deliverable.id, id);
        assert_eq!(
            deliverable.status_callback.as_deref(),
            Some("https://example.com/cb")
        );
        assert!(codec::decode(&bytes).is_ok());
    }
}
