//! The dispatcher as a role of the consumer engine (`eventlog`): the engine reads, claims,
//! caps, dead-letters and acks the consumer group `dispatcher`; this role only admits each
//! accepted decision of a batch and makes its first attempt. The batch is acked after that:
//! from then on the message's own schedule (retries, lapsed claims) owns it.

use std::sync::Arc;

use eventlog::{ApplyError, Batch, Role, Verdict};
use limiter::delivery::decode_deliverable;

use crate::dispatch::Dispatcher;

pub struct Deliver {
    dispatcher: Arc<Dispatcher>,
}

impl Deliver {
    pub fn new(dispatcher: Arc<Dispatcher>) -> Self {
        Self { dispatcher }
    }
}

impl Role for Deliver {
    const GROUP: &'static str = crate::GROUP;

    #[tracing::instrument(skip_all, fields(partition = batch.partition, batch = batch.entries.len()))]
    async fn apply(&self, batch: &Batch) -> Result<Verdict, ApplyError> {
        let mut verdict = Verdict::ack_rest();
        let mut messages = Vec::new();
        for entry in &batch.entries {
            match decode_deliverable(&entry.raw) {
                Ok(Some(message)) => messages.push(message),
                // Rejected, blocked and status entries are never sent.
                Ok(None) => {}
                Err(e) => verdict.dead_letter(entry, format!("undeliverable: {e}")),
            }
        }
        // Admitting is idempotent, so the engine may hand the same batch again after an error.
        let admitted = self
            .dispatcher
            .deliver(batch.partition, &messages)
            .await
            .map_err(ApplyError::outage)?;
        Ok(verdict.applied(admitted as u64))
    }
}
