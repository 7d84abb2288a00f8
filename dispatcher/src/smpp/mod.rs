//! The `smpp` provider: SMPP 3.4 to an SMSC, as an ESME bound as a transceiver (`SMPP_URL`).
//!
//! The PDUs and their codec are the `rusmpp` crate's; this module is what smsgate adds:
//! - [`link`]: one connection: requests matched to responses, enquire_link both ways.
//! - [`url`]: `SMPP_URL` (`smpp://system_id:password@host:port?system_type=…`).
//! - [`pdu`]: a message as its submit_sm parts (GSM 03.38 or UCS-2, UDH or `sar_*` TLVs).
//! - [`session`]: bind, keep alive, reconnect with backoff, unbind on shutdown; deliver_sm in.
//! - [`receipt`]: a deliver_sm as a receipt (TLVs or the `id:… stat:…` text).
//! - [`record`]: receipts into `delivered` / `undelivered` status events.
//!
//! At most `SMPP_WINDOW` submit_sm are outstanding at once (a semaphore across reconnects), so
//! a connection lost mid-window leaves at most that many parts whose fate is unknown: they are
//! retried, and only they can reach the SMSC twice. `sent` is a successful submit_sm_resp for
//! every part; ESME_RTHROTTLED and ESME_RMSGQFUL are transient, any other refusal permanent.

pub mod link;
pub mod pdu;
pub mod receipt;
pub mod record;
pub mod session;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use link::{Link, LinkError};
pub use pdu::Concatenation;
pub use record::ReceiptBook;
pub use url::SmppUrl;

use crate::provider::{Accepted, Outbound, Provider, SendError};

/// The provider's name on status events and metrics.
pub const NAME: &str = "smpp";

#[derive(Clone, Debug)]
pub struct SmppConfig {
    pub url: SmppUrl,
    /// `SMPP_WINDOW`: submit_sm outstanding at once.
    pub window: usize,
    /// The sender when the client named none (`SMPP_FROM`); empty leaves it to the SMSC.
    pub from: String,
    pub concatenation: Concatenation,
    pub enquire_link: Duration,
    /// For connect, bind, each submit_sm_resp and enquire_link_resp.
    pub response_timeout: Duration,
    /// How long a send waits for a bound session before it is a transient failure.
    pub bind_wait: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long a receipt that overtook its `sent` waits for it.
    pub receipt_patience: Duration,
}

impl SmppConfig {
    pub const DEFAULT_WINDOW: usize = 10;

    pub fn new(url: SmppUrl) -> Self {
        Self {
            url,
            window: Self::DEFAULT_WINDOW,
            from: String::new(),
            concatenation: Concatenation::Udh,
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            bind_wait: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            receipt_patience: Duration::from_secs(30),
        }
    }
}

pub struct SmppProvider {
    config: SmppConfig,
    window: Semaphore,
    bound: watch::Receiver<Option<Link>>,
    book: ReceiptBook,
}

impl SmppProvider {
    /// Starts the session (it connects in the background and keeps reconnecting) and returns
    /// the provider with the session's task, which ends after unbinding once `shutdown` fires.
    pub fn start(
        config: SmppConfig,
        book: ReceiptBook,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let session = tokio::spawn(session::run(config.clone(), book.clone(), tx, shutdown));
        let provider = Arc::new(Self {
            window: Semaphore::new(config.window.max(1)),
            config,
            bound: rx,
            book,
        });
        (provider, session)
    }

    /// The bound session, waiting for one up to `bind_wait`.
    async fn client(&self) -> Result<Link, SendError> {
        let mut bound = self.bound.clone();
        let wait = bound.wait_for(|c| c.as_ref().is_some_and(Link::is_open));
        match tokio::time::timeout(self.config.bind_wait, wait).await {
            Ok(Ok(client)) => client
                .as_ref()
                .cloned()
                .ok_or_else(|| SendError::transient("not bound to the SMSC")),
            _ => Err(SendError::transient(format!(
                "not bound to the SMSC at {} within {:?}",
                self.config.url.address(),
                self.config.bind_wait
            ))),
        }
    }

    async fn submit(&self, message: Outbound<'_>) -> Result<Accepted, SendError> {
        let parts = pdu::submit_sms(&message, &self.config.from, self.config.concatenation)
            .map_err(|e| SendError::permanent(e.to_string()))?;
        let total = parts.len();
        let mut ids = Vec::with_capacity(total);
        for part in parts {
            let _slot = self
                .window
                .acquire()
                .await
                .map_err(|_| SendError::transient("the SMPP window is closed"))?;
            let client = self.client().await?;
            tracing::trace!(id = %message.id, "submit_sm");
            let response = client.request(part).await.map_err(lost)?;
            let smsc_id = accepted(&response)?;
            tracing::trace!(id = %message.id, %smsc_id, "submit_sm_resp");
            if let Err(e) = self.book.submitted(&smsc_id, &message.id, total).await {
                // The SMSC has the part: sending it again would duplicate it. Only its receipt
                // will find no message.
                tracing::warn!(error = %e, %smsc_id, "SMPP part not indexed; its receipt will be ignored");
            }
            ids.push(smsc_id);
        }
        Ok(Accepted {
            provider_id: ids.join(","),
            delivered: false,
        })
    }
}

/// No response: the part may or may not have reached the SMSC, so it is tried again (this is
/// where the window bounds the duplicates).
fn lost(error: LinkError) -> SendError {
    SendError::transient(format!("submit_sm: {error}; the SMSC may have the part"))
}

/// The SMSC's message id from a successful submit_sm_resp. Throttling and a full queue are
/// worth retrying; any other command_status is the SMSC refusing this message, which it would
/// refuse again.
fn accepted(response: &Command) -> Result<String, SendError> {
    match (response.status(), response.pdu()) {
        (CommandStatus::EsmeRok, Some(Pdu::SubmitSmResp(resp))) => {
            Ok(resp.message_id().as_str().to_owned())
        }
        (CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful, _) => {
            Err(SendError::Transient {
                detail: format!("submit_sm: {}", session::describe(response)),
                retry_after: Some(Duration::from_secs(1)),
            })
        }
        _ => Err(SendError::permanent(format!(
            "submit_sm: {}",
            session::describe(response)
        ))),
    }
}

impl Provider for SmppProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, message: Outbound<'a>) -> BoxFuture<'a, Result<Accepted, SendError>> {
        self.submit(message).boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rusmpp::pdus::SubmitSmResp;
    use rusmpp::types::COctetString;

    use super::*;

    fn response(status: CommandStatus) -> Command {
        let id = std::str::FromStr::from_str("abc").unwrap();
        let resp: COctetString<1, 65> = id;
        Command::new(status, 7, SubmitSmResp::builder().message_id(resp).build())
    }

    #[test]
    fn throttling_and_a_full_queue_are_transient_other_refusals_permanent() {
        assert_eq!(accepted(&response(CommandStatus::EsmeRok)).unwrap(), "abc");
        for status in [CommandStatus::EsmeRthrottled, CommandStatus::EsmeRmsgqful] {
            assert!(matches!(
                accepted(&response(status)),
                Err(SendError::Transient {
                    retry_after: Some(_),
                    ..
                })
            ));
        }
        for status in [
            CommandStatus::EsmeRinvdstadr,
            CommandStatus::EsmeRsubmitfail,
            CommandStatus::EsmeRinvmsglen,
        ] {
            let refused = accepted(&response(status));
            assert!(
                matches!(&refused, Err(SendError::Permanent { detail }) if detail.contains("0x")),
                "{refused:?}"
            );
        }
        assert!(matches!(
            lost(LinkError::Closed),
            SendError::Transient { .. }
        ));
    }
}
