//! The SMPP session: one TCP connection to the SMSC, bound as a transceiver, kept alive by
//! enquire_link, and opened again with backoff whenever it is lost. The bound client is
//! published on a watch channel for `send`; deliver_sm from the SMSC are receipts, recorded and
//! then answered. On shutdown the session unbinds before it closes.

use std::str::FromStr;
use std::time::Duration;

use rusmpp::pdus::{BindTransceiver, DeliverSmResp};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::SmppConfig;
use super::link::Link;
use super::receipt;
use super::record::{ReceiptBook, Recorded};
use crate::telemetry::SMPP_BOUND;

#[derive(Debug, thiserror::Error)]
enum BindError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("connecting to {0}: timed out")]
    ConnectTimeout(String),
    #[error("the bind's {0} does not fit SMPP")]
    Field(&'static str),
    #[error("bind_transceiver: {0}")]
    Bind(String),
}

/// Why a bound session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

/// Runs the session until `shutdown`: connect, bind, serve, and again after any loss.
pub(super) async fn run(
    config: SmppConfig,
    book: ReceiptBook,
    bound: watch::Sender<Option<Link>>,
    shutdown: CancellationToken,
) {
    let mut backoff = config.reconnect_min;
    while !shutdown.is_cancelled() {
        let bind = tokio::select! {
            bind = connect_and_bind(&config) => bind,
            () = shutdown.cancelled() => break,
        };
        match bind {
            Ok((client, events)) => {
                tracing::info!(smsc = %config.url.address(), system_id = %config.url.system_id, "SMPP bound as transceiver");
                backoff = config.reconnect_min;
                bound.send_replace(Some(client.clone()));
                metrics::gauge!(SMPP_BOUND).set(1.0);
                let ended = serve(&client, events, &book, &config, &shutdown).await;
                bound.send_replace(None);
                metrics::gauge!(SMPP_BOUND).set(0.0);
                match ended {
                    Ended::Shutdown => {
                        unbind(&client).await;
                        return;
                    }
                    Ended::Lost(reason) => {
                        tracing::warn!(%reason, "SMPP session lost; reconnecting");
                        client.close();
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "SMPP bind failed");
            }
        }
        // Jitter, so replicas that lost the SMSC together do not all come back at once.
        let wait = backoff + backoff.mul_f64(rand::random::<f64>() / 5.0);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
    bound.send_replace(None);
}

async fn connect_and_bind(
    config: &SmppConfig,
) -> Result<(Link, mpsc::UnboundedReceiver<Command>), BindError> {
    let address = config.url.address();
    let stream = tokio::time::timeout(
        config.response_timeout,
        tokio::net::TcpStream::connect(&address),
    )
    .await
    .map_err(|_| BindError::ConnectTimeout(address.clone()))?
    .map_err(|source| BindError::Connect {
        address: address.clone(),
        source,
    })?;
    // Each submit_sm is a small write awaited by its sender: do not hold it back for more.
    let _ = stream.set_nodelay(true);
    let (link, incoming) = Link::open(stream, config.response_timeout, config.enquire_link);
    let bind = BindTransceiver::builder()
        .system_id(field("system_id", &config.url.system_id)?)
        .password(field("password", &config.url.password)?)
        .system_type(field("system_type", &config.url.system_type)?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build();
    let refused = |reason: String| {
        link.close();
        BindError::Bind(reason)
    };
    match link.request(bind).await {
        Ok(response)
            if response.status() == CommandStatus::EsmeRok
                && matches!(response.pdu(), Some(Pdu::BindTransceiverResp(_))) =>
        {
            Ok((link, incoming))
        }
        Ok(response) => Err(refused(describe(&response))),
        Err(e) => Err(refused(e.to_string())),
    }
}

fn field<const MAX: usize>(
    name: &'static str,
    value: &str,
) -> Result<COctetString<1, MAX>, BindError> {
    COctetString::from_str(value).map_err(|_| BindError::Field(name))
}

/// A response in words: its command_status, name and number.
pub(super) fn describe(response: &Command) -> String {
    let status = response.status();
    format!(
        "{:?} {status:?} (0x{:08X})",
        response.id(),
        u32::from(status)
    )
}

async fn serve(
    client: &Link,
    mut events: mpsc::UnboundedReceiver<Command>,
    book: &ReceiptBook,
    config: &SmppConfig,
    shutdown: &CancellationToken,
) -> Ended {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = shutdown.cancelled() => return Ended::Shutdown,
        };
        let Some(command) = event else {
            return Ended::Lost("connection closed".into());
        };
        if let Some(reason) = incoming(client, command, book, config) {
            return Ended::Lost(reason);
        }
    }
}

/// Handles one PDU the SMSC sent on its own. Returns why the session ends, if it does.
fn incoming(
    client: &Link,
    command: Command,
    book: &ReceiptBook,
    config: &SmppConfig,
) -> Option<String> {
    let sequence = command.sequence_number();
    match command.pdu() {
        Some(Pdu::DeliverSm(deliver_sm)) => {
            let parsed = receipt::parse(deliver_sm);
            let (client, book, patience) = (client.clone(), book.clone(), config.receipt_patience);
            // Answered after recording, so a receipt we could not record is offered again; in
            // its own task, so a slow one does not hold up the session's other PDUs.
            tokio::spawn(async move {
                let status = match parsed {
                    Some(receipt) => record_patiently(&book, &receipt, patience).await,
                    None => {
                        tracing::debug!(
                            "deliver_sm that is no receipt (mobile-originated), ignored"
                        );
                        CommandStatus::EsmeRok
                    }
                };
                let answer = client.respond(sequence, status, DeliverSmResp::builder().build());
                if let Err(e) = answer {
                    tracing::debug!(error = %e, "deliver_sm_resp not sent; the SMSC will offer the receipt again");
                }
            });
            None
        }
        Some(Pdu::Unbind) => {
            let _ = client.respond(sequence, CommandStatus::EsmeRok, Pdu::UnbindResp);
            Some("the SMSC unbound".into())
        }
        _ => {
            tracing::debug!(id = ?command.id(), "SMPP command ignored");
            None
        }
    }
}

/// Records `receipt`, waiting up to `patience` for its part and its `sent` to be recorded.
/// ESME_RX_T_APPN (a transient refusal: the SMSC offers it again) when Redis would not answer.
async fn record_patiently(
    book: &ReceiptBook,
    receipt: &receipt::Receipt,
    patience: Duration,
) -> CommandStatus {
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(50);
    loop {
        let outcome = book.record(receipt).await;
        match outcome {
            Ok(Recorded::Changed | Recorded::Ignored) => return CommandStatus::EsmeRok,
            Ok(Recorded::NotYet) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Ok(Recorded::NotYet) => {
                metrics::counter!(crate::telemetry::RECEIPTS, "result" => "unknown").increment(1);
                tracing::info!(smsc_id = %receipt.message_id, "receipt for no message sent from here; acknowledged");
                return CommandStatus::EsmeRok;
            }
            Err(e) => {
                tracing::warn!(error = %e, "receipt not recorded; refused for the SMSC to offer again");
                return CommandStatus::EsmeRxTAppn;
            }
        }
    }
}

/// A clean end: unbind, wait for unbind_resp (within the link's timeout), close.
async fn unbind(client: &Link) {
    match client.request(Pdu::Unbind).await {
        Ok(response) if response.status() == CommandStatus::EsmeRok => {
            tracing::info!("SMPP unbound");
        }
        Ok(response) => tracing::warn!(response = %describe(&response), "SMPP unbind refused"),
        Err(e) => tracing::warn!(error = %e, "SMPP unbind not answered"),
    }
    client.close();
}
