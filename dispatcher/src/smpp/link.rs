//! One SMPP connection: PDUs framed by `rusmpp`'s codec, requests matched to their responses by
//! sequence number, enquire_link answered and sent on its own, everything else the SMSC sends
//! handed to the session. No binding and no retrying here: that is the session's job.
//!
//! Why not `rusmppc`'s client: its connection future (0.4.0) stops polling its request queue
//! after five requests per wake-up without asking to be woken again, so with a full window and
//! receipts flowing it stalls until the next enquire_link. A writer task and a reader task over
//! the same codec are small enough to own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the connection is closed")]
    Closed,
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Command>>>>;

/// A handle on an open connection; cheap to clone.
#[derive(Clone)]
pub struct Link {
    out: mpsc::UnboundedSender<Command>,
    pending: Pending,
    sequence: Arc<AtomicU32>,
    closed: CancellationToken,
    timeout: Duration,
}

impl Link {
    /// Starts the reader and writer of `stream`. Returns the link and the PDUs the SMSC sends
    /// on its own (deliver_sm, unbind, …); that channel ends when the connection does.
    pub fn open(
        stream: TcpStream,
        timeout: Duration,
        enquire_link: Duration,
    ) -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (sink, mut source) = Framed::new(stream, CommandCodec::new()).split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Command>();
        let (incoming, incoming_rx) = mpsc::unbounded_channel();
        let link = Self {
            out,
            pending: Arc::new(Mutex::new(HashMap::new())),
            sequence: Arc::new(AtomicU32::new(1)),
            closed: CancellationToken::new(),
            timeout,
        };

        let closed = link.closed.clone();
        tokio::spawn(async move {
            let mut sink = sink;
            loop {
                let command = tokio::select! {
                    command = out_rx.recv() => command,
                    () = closed.cancelled() => None,
                };
                let Some(command) = command else { break };
                // Feed what is queued, then flush once: a full window goes out in one write.
                let mut written = sink.feed(command).await;
                while written.is_ok() {
                    match out_rx.try_recv() {
                        Ok(more) => written = sink.feed(more).await,
                        Err(_) => break,
                    }
                }
                if written.is_err() || sink.flush().await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
            closed.cancel();
        });

        let reader = link.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = source.next() => next,
                    () = reader.closed.cancelled() => None,
                };
                let Some(Ok(command)) = next else { break };
                reader.read(command, &incoming);
            }
            reader.closed.cancel();
            // Dropping the waiting senders answers every request in flight with `Closed`.
            reader.pending_lock().clear();
        });

        let keepalive = link.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(enquire_link);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = keepalive.closed.cancelled() => break,
                }
                if keepalive.request(Pdu::EnquireLink).await.is_err() {
                    tracing::warn!("enquire_link not answered; closing the SMPP connection");
                    keepalive.close();
                    break;
                }
            }
        });
        (link, incoming_rx)
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Command>>> {
        // A panic while holding the map cannot leave it half-changed: use it as it is.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, command: Command, incoming: &mpsc::UnboundedSender<Command>) {
        let id = command.id();
        if id.is_response() || matches!(command.pdu(), Some(Pdu::GenericNack)) {
            let waiting = self.pending_lock().remove(&command.sequence_number());
            match waiting {
                Some(waiting) => {
                    let _ = waiting.send(command);
                }
                None => tracing::debug!(?id, "SMPP response to no request in flight"),
            }
            return;
        }
        if matches!(command.pdu(), Some(Pdu::EnquireLink)) {
            let _ = self.respond(
                command.sequence_number(),
                CommandStatus::EsmeRok,
                Pdu::EnquireLinkResp,
            );
            return;
        }
        let _ = incoming.send(command);
    }

    /// Sends `pdu` and waits (up to the link's timeout) for its response, whatever its status.
    pub async fn request(&self, pdu: impl Into<Pdu>) -> Result<Command, LinkError> {
        if self.closed.is_cancelled() {
            return Err(LinkError::Closed);
        }
        // Sequence numbers run 1..=0x7FFFFFFF (SMPP 3.4 §2.6), then wrap.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1;
        let (tx, rx) = oneshot::channel();
        self.pending_lock().insert(sequence, tx);
        let command = Command::new(CommandStatus::EsmeRok, sequence, pdu);
        if self.out.send(command).is_err() {
            self.pending_lock().remove(&sequence);
            return Err(LinkError::Closed);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => {
                self.pending_lock().remove(&sequence);
                Err(LinkError::Timeout(self.timeout))
            }
        }
    }

    /// Answers the SMSC's request `sequence`.
    pub fn respond(
        &self,
        sequence: u32,
        status: CommandStatus,
        pdu: impl Into<Pdu>,
    ) -> Result<(), LinkError> {
        self.out
            .send(Command::new(status, sequence, pdu))
            .map_err(|_| LinkError::Closed)
    }

    pub fn is_open(&self) -> bool {
        !self.closed.is_cancelled()
    }

    /// Closes the connection; requests in flight fail with `Closed`.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Completes when the connection is closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }
}
