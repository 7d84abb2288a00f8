//! Recording SMPP receipts: each submitted part's SMSC id is indexed to its message, and a
//! receipt becomes the message's `delivered` or `undelivered` through the same `delivery.lua`
//! change as a Twilio receipt, so the stream, `GET /api/sms/{id}` and callbacks agree.
//!
//! ```text
//! <ns>:smpp:part:<smsc id>        "<message id> <parts>", set when the part's submit_sm_resp came
//! <ns>:smpp:delivered:<message>   set of the parts' SMSC ids receipted as delivered
//! ```
//!
//! A message of several parts is `delivered` once every part is, and `undelivered` as soon as
//! any part is not: the recipient cannot read half a message.

use fred::clients::Pool;
use fred::interfaces::{KeysInterface, SetsInterface};
use fred::types::Expiration;
use limiter::delivery::{
    Change, DeliveryError, DeliveryStatus, DeliveryStore, Schedule, StatusEvent,
};
use uuid::Uuid;

use super::receipt::Receipt;
use crate::telemetry::RECEIPTS;

/// What became of one receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The message's status changed.
    Changed,
    /// Nothing to change: a state that is not final, a part of a message still missing others,
    /// or a message already final.
    Ignored,
    /// The part or its `sent` is not recorded yet: a receipt can overtake the dispatcher, which
    /// records `sent` after the submit_sm_resp that the SMSC may follow at once with the receipt.
    NotYet,
}

#[derive(Clone)]
pub struct ReceiptBook {
    redis: Pool,
    store: DeliveryStore,
    keep_secs: i64,
}

impl ReceiptBook {
    pub fn new(redis: Pool, store: DeliveryStore) -> Self {
        Self {
            redis,
            store,
            keep_secs: i64::try_from(DeliveryStore::DEFAULT_KEEP_SECS).unwrap_or(i64::MAX),
        }
    }

    fn part_key(&self, smsc_id: &str) -> String {
        self.store.layout().global(&format!("smpp:part:{smsc_id}"))
    }

    fn delivered_key(&self, id: &Uuid) -> String {
        self.store.layout().global(&format!("smpp:delivered:{id}"))
    }

    /// Notes that the SMSC took a part of message `id` (of `parts` in all) as `smsc_id`.
    pub async fn submitted(
        &self,
        smsc_id: &str,
        id: &Uuid,
        parts: usize,
    ) -> Result<(), DeliveryError> {
        self.redis
            .next()
            .set::<(), _, _>(
                self.part_key(smsc_id),
                format!("{id} {parts}"),
                Some(Expiration::EX(self.keep_secs)),
                None,
                false,
            )
            .await?;
        Ok(())
    }

    /// Applies one receipt.
    pub async fn record(&self, receipt: &Receipt) -> Result<Recorded, DeliveryError> {
        let Some(status) = receipt.status() else {
            metrics::counter!(RECEIPTS, "result" => "ignored").increment(1);
            return Ok(Recorded::Ignored);
        };
        let redis = self.redis.next();
        let Some(part) = redis
            .get::<Option<String>, _>(self.part_key(&receipt.message_id))
            .await?
        else {
            return Ok(Recorded::NotYet);
        };
        let mut words = part.split(' ');
        let (Some(Ok(id)), Some(Ok(parts))) = (
            words.next().map(str::parse::<Uuid>),
            words.next().map(str::parse::<u64>),
        ) else {
            return Err(DeliveryError::Reply(format!(
                "malformed SMPP part index {part:?}"
            )));
        };
        let Some(state) = self.store.locate(redis, &id).await? else {
            metrics::counter!(RECEIPTS, "result" => "unknown").increment(1);
            return Ok(Recorded::Ignored);
        };
        match state.status {
            DeliveryStatus::Queued | DeliveryStatus::Sending => return Ok(Recorded::NotYet),
            s if s.is_final() => {
                metrics::counter!(RECEIPTS, "result" => "ignored").increment(1);
                return Ok(Recorded::Ignored);
            }
            _ => {}
        }
        if status == DeliveryStatus::Delivered && parts > 1 {
            let key = self.delivered_key(&id);
            redis
                .sadd::<(), _, _>(&key, receipt.message_id.as_str())
                .await?;
            redis.expire::<(), _>(&key, self.keep_secs, None).await?;
            let done: u64 = redis.scard(&key).await?;
            if done < parts {
                metrics::counter!(RECEIPTS, "result" => "part").increment(1);
                return Ok(Recorded::Ignored);
            }
        }
        let mut event = StatusEvent::new(id, &state.to, status, super::NAME);
        event.provider_id = state.provider_id.clone();
        event.attempt = state.attempts;
        event.detail = Some(receipt.detail());
        let change = Change {
            event,
            schedule: Schedule::Keep,
        };
        let recorded = self.store.change(redis, state.partition, &change).await?;
        let result = if recorded { "recorded" } else { "ignored" };
        metrics::counter!(RECEIPTS, "result" => result).increment(1);
        Ok(if recorded {
            Recorded::Changed
        } else {
            Recorded::Ignored
        })
    }
}
