//! The client's `status_callback`: every status change POSTed as JSON, signed
//! (`Smsgate-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`), retried with backoff for up
//! to a day. An API client's `StatusCallback` (the Twilio-compatible API) gets Twilio's own
//! callback instead: form-encoded `MessageSid`, `MessageStatus`, `ErrorCode`…, signed with
//! `X-Twilio-Signature` under that client's auth token, so its existing webhook handler and
//! the SDK's `RequestValidator` accept it unchanged. Targets are checked after resolution: private, loopback, link-local and other
//! non-public addresses are refused unless inside `SMSGATE_CALLBACK_ALLOW`, and the request
//! goes to the address that was checked, so a DNS answer cannot change between check and use.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use limiter::delivery::{DeliveryStatus, PendingCallback};
use limiter::twilio::{CallbackTarget, TwilioCallback};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Smsgate-Signature";
/// The header of Twilio's own signature, on callbacks to API clients.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";

#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// Signs smsgate's JSON callbacks (`SMSGATE_CALLBACK_SECRET`); without it none is sent
    /// (ingest refuses a `status_callback` then).
    pub secret: Option<String>,
    /// Each API client's auth token by account SID: what its Twilio-format callbacks are
    /// signed with.
    pub api_tokens: Arc<HashMap<String, SecretString>>,
    /// CIDRs a callback may reach even though they are not public (tests, an internal service).
    pub allow: Vec<IpNet>,
    pub timeout: Duration,
    /// How long a change keeps being retried before it is given up.
    pub max_age: Duration,
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn sign(secret: &str, unix: i64, body: &str) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Addresses that are not the public internet: loopback, private, link-local, CGNAT,
/// unspecified, multicast, broadcast, documentation, unique-local, and IPv4 inside IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
        }
    }
}

/// What became of one callback POST.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Answered,
    /// Worth trying again later.
    Failed(String),
    /// Never to be tried: the target is not allowed or not a URL.
    Refused(String),
}

/// Posts pending callbacks.
#[derive(Clone, Debug)]
pub struct CallbackSender {
    config: CallbackConfig,
}

impl CallbackSender {
    pub fn new(config: CallbackConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &CallbackConfig {
        &self.config
    }

    /// The address to connect to, after checking it against the rules.
    pub async fn target(&self, url: &Url) -> Result<SocketAddr, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {} is not http or https", url.scheme()));
        }
        let host = url.host_str().ok_or("no host")?;
        let port = url.port_or_known_default().ok_or("no port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("resolving {host}: {e}"))?
                .collect(),
        };
        // Every answer must pass: a name with one public and one private address is refused.
        let mut chosen = None;
        for addr in &addrs {
            let ip = addr.ip();
            if is_internal(ip) && !self.config.allow.iter().any(|net| net.contains(&ip)) {
                return Err(format!(
                    "{host} resolves to {ip}, which is not public and not in SMSGATE_CALLBACK_ALLOW"
                ));
            }
            chosen.get_or_insert(*addr);
        }
        chosen.ok_or_else(|| format!("{host} has no address"))
    }

    /// POSTs one pending callback, signed, to the checked address: smsgate's JSON, or Twilio's
    /// form for an API client's.
    pub async fn post(&self, callback: &PendingCallback, unix: i64) -> Sent {
        let (content_type, body, signature) = match &callback.target {
            CallbackTarget::Smsgate { .. } => {
                let Some(secret) = &self.config.secret else {
                    return Sent::Refused("no SMSGATE_CALLBACK_SECRET to sign it with".into());
                };
                (
                    "application/json",
                    callback.body.clone(),
                    (SIGNATURE_HEADER, sign(secret, unix, &callback.body)),
                )
            }
            CallbackTarget::Twilio(twilio) => {
                let Some(token) = self.config.api_tokens.get(&twilio.account_sid) else {
                    return Sent::Refused(format!(
                        "API client {} is no longer configured",
                        twilio.account_sid
                    ));
                };
                let params = match twilio_params(twilio, &callback.body) {
                    Ok(params) => params,
                    Err(reason) => return Sent::Refused(reason),
                };
                let signature =
                    crate::twilio::signature(token.expose_secret(), &twilio.url, &params);
                let Ok(body) = serde_urlencoded::to_string(&params) else {
                    return Sent::Refused("the callback cannot be form-encoded".into());
                };
                (
                    "application/x-www-form-urlencoded",
                    body,
                    (TWILIO_SIGNATURE_HEADER, signature),
                )
            }
        };
        let url = match Url::parse(callback.target.url()) {
            Ok(url) => url,
            Err(e) => return Sent::Refused(format!("not a URL: {e}")),
        };
        let addr = match self.target(&url).await {
            Ok(addr) => addr,
            Err(reason) => return Sent::Refused(reason),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smsgate/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = url.domain() {
            builder = builder.resolve(domain, addr);
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(e) => return Sent::Failed(e.to_string()),
        };
        let result = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(signature.0, signature.1)
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => Sent::Answered,
            Ok(r) => Sent::Failed(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Sent::Failed(e.to_string()),
        }
    }
}

/// The part of smsgate's callback JSON that Twilio's callback carries.
#[derive(Deserialize)]
struct ChangeView {
    id: Uuid,
    to: String,
    status: DeliveryStatus,
    #[serde(default)]
    detail: Option<String>,
}

/// Twilio's status callback parameters for one change, as Twilio sends them (`SmsSid` and
/// `SmsStatus` too, which older handlers read).
pub fn twilio_params(
    target: &TwilioCallback,
    change_json: &str,
) -> Result<Vec<(String, String)>, String> {
    let change: ChangeView = serde_json::from_str(change_json)
        .map_err(|e| format!("the status change does not parse: {e}"))?;
    let sid = limiter::twilio::message_sid(&change.id);
    let status = limiter::twilio::message_status(change.status);
    let mut params = vec![
        ("AccountSid".to_owned(), target.account_sid.clone()),
        ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
        ("MessageSid".to_owned(), sid.clone()),
        ("MessageStatus".to_owned(), status.to_owned()),
        ("SmsSid".to_owned(), sid),
        ("SmsStatus".to_owned(), status.to_owned()),
        ("To".to_owned(), change.to),
    ];
    if let Some(from) = &target.from {
        params.push(("From".to_owned(), from.clone()));
    }
    if let Some(code) = limiter::twilio::error_code(change.status, change.detail.as_deref()) {
        params.push(("ErrorCode".to_owned(), code.to_string()));
    }
    Ok(params)
}

/// When a failed callback is tried again: as long again as it has been failing (so 1 s, 2 s,
/// 4 s, …), at most an hour; `None` once it is older than `max_age`.
pub fn next_try(first_ms: i64, now_ms: i64, max_age: Duration) -> Option<i64> {
    let age = (now_ms - first_ms).max(0);
    if age >= i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX) {
        return None;
    }
    Some(now_ms + age.clamp(1_000, 3_600_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign("secret", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let config = CallbackConfig {
            secret: Some("s".into()),
            api_tokens: Arc::default(),
            allow: vec![],
            timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(86_400),
        };
        let strict = CallbackSender::new(config.clone());
        for url in [
            "http://127.0.0.1:9/cb",
            "http://localhost:9/cb",
            "http://[::1]:9/cb",
            "http://169.254.169.254/latest",
            "ftp://example.com/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(strict.target(&url).await.is_err(), "{url}");
        }
        let allowing = CallbackSender::new(CallbackConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..config
        });
        let url = Url::parse("http://localhost:9/cb").unwrap();
        assert_eq!(allowing.target(&url).await.unwrap().port(), 9);
    }

    #[test]
    fn twilio_callbacks_carry_twilios_parameters() {
        let id = Uuid::now_v7();
        let target = TwilioCallback {
            url: "https://app.example.com/status".into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            from: Some("+14155550100".into()),
        };
        let json = serde_json::json!({
            "id": id, "to": "+14155550123", "status": "undelivered", "at": "",
            "provider": "twilio", "provider_id": null, "attempt": 1,
            "detail": "Twilio error 30003"
        })
        .to_string();
        let params = twilio_params(&target, &json).unwrap();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("MessageSid"),
            Some(limiter::twilio::message_sid(&id).as_str())
        );
        assert_eq!(get("MessageStatus"), Some("undelivered"));
        assert_eq!(get("ErrorCode"), Some("30003"));
        assert_eq!(get("From"), Some("+14155550100"));
        assert_eq!(get("AccountSid"), Some(target.account_sid.as_str()));
    }

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let day = Duration::from_secs(86_400);
        assert_eq!(next_try(0, 0, day), Some(1_000));
        assert_eq!(next_try(0, 4_000, day), Some(8_000));
        assert_eq!(next_try(0, 7_200_000, day), Some(10_800_000));
        assert_eq!(next_try(0, 86_400_000, day), None);
    }
}
