//! The `Provider` trait: the one thing a delivery backend implements. The dispatcher owns
//! retries, pacing, status records and callbacks; a provider only hands one message over and
//! says whether it took it, and if not, whether trying again could help.

use std::time::Duration;

use futures::future::BoxFuture;
use uuid::Uuid;

/// One message to hand over.
#[derive(Clone, Copy, Debug)]
pub struct Outbound<'a> {
    /// smsgate's message id (providers may pass it along for receipts).
    pub id: Uuid,
    /// E.164 destination.
    pub to: &'a str,
    /// The sender the client asked for; providers fall back to their own configured one.
    pub from: Option<&'a str>,
    pub body: &'a str,
}

/// The provider took the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's own id for the message (Twilio's `SM…` sid), used to match receipts.
    pub provider_id: String,
    /// True when taking it is delivering it (the `log` provider): no receipt will follow.
    pub delivered: bool,
}

/// Why the provider did not take the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Trying again later may succeed: timeouts, unreachable, 5xx, throttling.
    #[error("transient: {detail}")]
    Transient {
        detail: String,
        /// The provider's own hint (`Retry-After`), when it gave one.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot succeed: the provider refused this message.
    #[error("permanent: {detail}")]
    Permanent { detail: String },
}

impl SendError {
    pub fn transient(detail: impl Into<String>) -> Self {
        Self::Transient {
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn permanent(detail: impl Into<String>) -> Self {
        Self::Permanent {
            detail: detail.into(),
        }
    }
}

/// A delivery backend. Boxed futures keep it object-safe: the provider is chosen at start from
/// `SMSGATE_PROVIDER`.
pub trait Provider: Send + Sync + 'static {
    /// The name recorded on every status event (`log`, `twilio`, …); also a metric label.
    fn name(&self) -> &'static str;

    /// Hands one message over. Called at least once per accepted message; a crash between the
    /// call and the recording of its result repeats it.
    fn send<'a>(&'a self, message: Outbound<'a>) -> BoxFuture<'a, Result<Accepted, SendError>>;
}
