//! The log in Twilio's words, for the Twilio-compatible Messages API: the message SID that
//! names an event, the status and error code of a delivery state, and where and in which
//! format a message's status changes are reported.
//!
//! Ingest answers the API and the dispatcher posts the callbacks; both read the same events, so
//! the vocabulary they share lives here, beside the event and the delivery state it translates.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delivery::{DeliveryStatus, HistoryEntry};

/// The prefix of a Twilio Message SID.
pub const MESSAGE_SID_PREFIX: &str = "SM";

/// `SM` + the event id's 32 hex digits: a SID of Twilio's form that maps back to the id.
pub fn message_sid(id: &Uuid) -> String {
    format!("{MESSAGE_SID_PREFIX}{}", id.simple())
}

/// The event id of a message SID; `None` for anything that is not `SM` + 32 hex digits.
pub fn parse_message_sid(sid: &str) -> Option<Uuid> {
    let hex = sid.strip_prefix(MESSAGE_SID_PREFIX)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(hex).ok()
}

/// Twilio's `status` of a message in a delivery state. `expired` (never handed over within
/// `SMSGATE_DELIVERY_TTL`) has no name of its own at Twilio: it is `failed`, with error 30001
/// (Twilio's code for a message that waited in its queue too long).
pub fn message_status(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Queued => "queued",
        DeliveryStatus::Sending => "sending",
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Undelivered => "undelivered",
        DeliveryStatus::Failed | DeliveryStatus::Expired => "failed",
    }
}

/// Twilio's `error_code` for a final status that is not delivered: the provider's own Twilio
/// code when its receipt named one (`Twilio error 30003`), else Twilio's generic codes.
pub fn error_code(status: DeliveryStatus, detail: Option<&str>) -> Option<u32> {
    let named = detail
        .and_then(|d| d.strip_prefix("Twilio error "))
        .and_then(|code| code.trim().parse().ok());
    match status {
        DeliveryStatus::Expired => Some(30001),
        DeliveryStatus::Undelivered | DeliveryStatus::Failed => named.or(Some(30008)),
        _ => None,
    }
}

/// The detail of the latest history entry: what became of the last attempt.
pub fn last_detail(history: &[HistoryEntry]) -> Option<&str> {
    history.last().and_then(|h| h.detail.as_deref())
}

/// Where a message's status changes are reported, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackTarget {
    /// `POST /api/sms`'s `status_callback`: smsgate's JSON, signed with `Smsgate-Signature`.
    Smsgate { url: String },
    /// An API client's `StatusCallback`: Twilio's form-encoded callback, signed with
    /// `X-Twilio-Signature` under that client's auth token.
    Twilio(TwilioCallback),
}

/// What a Twilio-format callback says besides the change itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioCallback {
    pub url: String,
    pub account_sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Tagged {
    twilio: TwilioCallback,
}

impl CallbackTarget {
    /// The text the delivery state keeps: a plain URL for smsgate's callbacks (what states
    /// written before API clients hold), one line of JSON for Twilio's.
    pub fn encode(&self) -> String {
        match self {
            Self::Smsgate { url } => url.clone(),
            Self::Twilio(twilio) => serde_json::to_string(&Tagged {
                twilio: twilio.clone(),
            })
            .unwrap_or_default(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return None;
        }
        if text.starts_with('{') {
            let tagged: Tagged = serde_json::from_str(text).ok()?;
            return Some(Self::Twilio(tagged.twilio));
        }
        Some(Self::Smsgate {
            url: text.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Smsgate { url } => url,
            Self::Twilio(twilio) => &twilio.url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sids_map_to_event_ids_and_back() {
        let id = Uuid::now_v7();
        let sid = message_sid(&id);
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert_eq!(parse_message_sid(&sid), Some(id));
        assert_eq!(parse_message_sid(&sid.to_uppercase()), Some(id));
        for bad in [
            "",
            "SM",
            "MM0123456789abcdef0123456789abcdef",
            "SM0123",
            "SMzz23456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_message_sid(bad), None, "{bad}");
        }
        let dashed = format!("SM{}", &id.to_string()[..32]);
        assert_eq!(parse_message_sid(&dashed), None);
    }

    #[test]
    fn statuses_and_error_codes_follow_twilio() {
        assert_eq!(message_status(DeliveryStatus::Expired), "failed");
        assert_eq!(error_code(DeliveryStatus::Expired, None), Some(30001));
        assert_eq!(
            error_code(DeliveryStatus::Undelivered, Some("Twilio error 30003")),
            Some(30003)
        );
        assert_eq!(
            error_code(DeliveryStatus::Failed, Some("HTTP 400")),
            Some(30008)
        );
        assert_eq!(error_code(DeliveryStatus::Delivered, None), None);
    }

    #[test]
    fn callback_targets_round_trip_and_plain_urls_are_smsgates() {
        let plain = CallbackTarget::parse("https://example.com/cb").unwrap();
        assert_eq!(
            plain,
            CallbackTarget::Smsgate {
                url: "https://example.com/cb".into()
            }
        );
        assert_eq!(plain.encode(), "https://example.com/cb");
        let twilio = CallbackTarget::Twilio(TwilioCallback {
            url: "https://app.example.com/twilio/status?x=1".into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            from: Some("Acme Shop".into()),
        });
        let text = twilio.encode();
        assert!(
            !text.contains('\n'),
            "the pending callback record is line-based"
        );
        assert_eq!(CallbackTarget::parse(&text), Some(twilio));
        assert_eq!(CallbackTarget::parse(""), None);
    }
}
