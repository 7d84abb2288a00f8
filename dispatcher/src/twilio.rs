//! The `twilio` provider: Twilio's REST Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! form-encoded, basic auth), and the verification of Twilio's status callbacks
//! (`X-Twilio-Signature`). The base URL is configurable, so any Twilio-compatible API works.

use std::time::Duration;

use base64::Engine as _;
use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use limiter::delivery::DeliveryStatus;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::provider::{Accepted, Outbound, Provider, SendError};

/// Who sends: a number (`TWILIO_FROM`) or a Messaging Service (`TWILIO_MESSAGING_SERVICE_SID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    From(String),
    MessagingService(String),
}

#[derive(Clone, Debug)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: String,
    pub sender: Sender,
    /// `https://api.twilio.com` unless a Twilio-compatible provider is used.
    pub base_url: String,
    /// Where Twilio posts receipts (`<SMSGATE_PUBLIC_URL>/api/providers/twilio/status`), when
    /// smsgate has a public URL; otherwise receipts follow the account's own configuration.
    pub status_callback: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl TwilioConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.twilio.com";
}

#[derive(Debug, thiserror::Error)]
#[error("building the Twilio HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

pub struct TwilioProvider {
    http: reqwest::Client,
    config: TwilioConfig,
    messages_url: String,
}

/// The part of Twilio's answers the dispatcher reads: the message sid on 201, the error on
/// anything else (`{"code": 21211, "message": "…", "status": 400}`).
#[derive(Debug, Deserialize)]
struct TwilioReply {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

/// Twilio's code for "too many requests" (it answers 429 with it).
const TOO_MANY_REQUESTS: u32 = 20429;

impl TwilioProvider {
    pub fn new(config: TwilioConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smsgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let messages_url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url.trim_end_matches('/'),
            config.account_sid
        );
        Ok(Self {
            http,
            config,
            messages_url,
        })
    }

    async fn post(&self, message: Outbound<'_>) -> Result<Accepted, SendError> {
        let mut form: Vec<(&str, &str)> = vec![("To", message.to), ("Body", message.body)];
        match (&self.config.sender, message.from) {
            // A client's own sender id wins over the configured number, not over a service.
            (Sender::From(_), Some(from)) => form.push(("From", from)),
            (Sender::From(from), None) => form.push(("From", from)),
            (Sender::MessagingService(sid), _) => form.push(("MessagingServiceSid", sid)),
        }
        // smsgate's id in the receipt URL (covered by Twilio's signature) finds the message
        // without an index lookup.
        let callback = self
            .config
            .status_callback
            .as_ref()
            .map(|url| format!("{url}?id={}", message.id));
        if let Some(url) = &callback {
            form.push(("StatusCallback", url));
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::transient(describe(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| SendError::transient(describe(&e)))?;
        let reply: Option<TwilioReply> = serde_json::from_slice(&body).ok();
        classify(status, reply, retry_after)
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        format!("unreachable: {error}")
    } else {
        error.to_string()
    }
}

/// Transient: 5xx, 429 and Twilio's 20429; permanent: every other refusal (bad number,
/// unverified sender, authentication): sending the same request again cannot succeed.
fn classify(
    status: StatusCode,
    reply: Option<TwilioReply>,
    retry_after: Option<Duration>,
) -> Result<Accepted, SendError> {
    let code = reply.as_ref().and_then(|r| r.code);
    let text = reply.as_ref().and_then(|r| r.message.clone());
    let detail = match (code, text) {
        (Some(code), Some(text)) => format!("HTTP {}: {code} {text}", status.as_u16()),
        (Some(code), None) => format!("HTTP {}: {code}", status.as_u16()),
        (None, Some(text)) => format!("HTTP {}: {text}", status.as_u16()),
        (None, None) => format!("HTTP {}", status.as_u16()),
    };
    if status.is_success() {
        return match reply.and_then(|r| r.sid) {
            Some(sid) => Ok(Accepted {
                provider_id: sid,
                delivered: false,
            }),
            // Twilio took it but we cannot tell which it is: sending again would duplicate.
            None => Err(SendError::permanent(format!(
                "{detail} without a message sid"
            ))),
        };
    }
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || code == Some(TOO_MANY_REQUESTS)
    {
        return Err(SendError::Transient {
            detail,
            retry_after,
        });
    }
    Err(SendError::permanent(detail))
}

impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: Outbound<'a>) -> BoxFuture<'a, Result<Accepted, SendError>> {
        self.post(message).boxed()
    }
}

/// Twilio's request signature: base64 of HMAC-SHA1, keyed by the auth token, over the full URL
/// Twilio posted to followed by every form parameter's name and value, sorted by name.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signing_mac(auth_token, url, params).finalize().into_bytes())
}

fn signing_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Checks `X-Twilio-Signature` in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    signing_mac(auth_token, url, params)
        .verify_slice(&given)
        .is_ok()
}

/// What a Twilio `MessageStatus` means here; `None` for the ones smsgate records itself
/// (`queued`, `sending`, `accepted`, `scheduled`…) or does not know.
pub fn receipt_status(message_status: &str) -> Option<DeliveryStatus> {
    match message_status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" | "read" => Some(DeliveryStatus::Delivered),
        "undelivered" => Some(DeliveryStatus::Undelivered),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: Option<u32>) -> Option<TwilioReply> {
        Some(TwilioReply {
            sid: None,
            code,
            message: Some("nope".into()),
        })
    }

    #[test]
    fn throttling_timeouts_and_server_errors_are_transient_other_refusals_permanent() {
        let transient =
            |r: Result<Accepted, SendError>| matches!(r, Err(SendError::Transient { .. }));
        assert!(transient(classify(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            None
        )));
        assert!(transient(classify(
            StatusCode::SERVICE_UNAVAILABLE,
            reply(None),
            None
        )));
        assert!(transient(classify(
            StatusCode::TOO_MANY_REQUESTS,
            reply(Some(20429)),
            None
        )));
        assert!(transient(classify(
            StatusCode::BAD_REQUEST,
            reply(Some(20429)),
            None
        )));
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
        ] {
            let r = classify(status, reply(Some(21211)), None);
            assert!(
                matches!(r, Err(SendError::Permanent { ref detail }) if detail.contains("21211")),
                "{r:?}"
            );
        }
        let ok = classify(
            StatusCode::CREATED,
            Some(TwilioReply {
                sid: Some("SM1".into()),
                code: None,
                message: None,
            }),
            None,
        );
        assert_eq!(ok.unwrap().provider_id, "SM1");
    }

    #[test]
    fn signatures_follow_twilios_documented_example() {
        // The example of Twilio's "Webhooks security" page: this URL, these parameters and the
        // token 12345 sign to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12345",
            url,
            &params[1..],
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify("12345", url, &params, "not base64!"));
    }
}
