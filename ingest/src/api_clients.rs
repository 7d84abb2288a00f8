//! API clients of the Twilio-compatible API: an account SID and its auth token, checked from
//! the HTTP basic auth the Twilio SDKs send.
//!
//! No token is ever stored: not in the configuration, not in Redis, not on an event. The
//! operator lists account SIDs (`SMSGATE_API_CLIENTS`), and each client's auth token is derived
//! from one server secret (`SMSGATE_API_SECRET`) as
//! `hex(HMAC-SHA256(secret, "smsgate api token\0" sid "\0" generation))[..32]` — 32 hex digits,
//! the shape of Twilio's own tokens. `smsgate api-token <sid>` prints it for the operator to
//! hand over. Derivation rather than a stored hash because smsgate must also *sign* with the
//! token: Twilio's `X-Twilio-Signature` on status callbacks is an HMAC keyed with it, so a
//! one-way hash alone could authenticate a client but never sign for it. Listing `AC…/2`
//! instead of `AC…` rotates one client's token; changing the secret rotates every token.
//!
//! Checking a token compares SHA-256 digests in constant time, so neither the token's bytes
//! nor its length leak through timing.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest `SMSGATE_API_SECRET` accepted: every token is only as strong as it.
pub const MIN_SECRET_LEN: usize = 16;

/// One API client.
#[derive(Clone)]
pub struct ApiClient {
    /// `AC` + 32 hex digits, as the Twilio SDKs require.
    pub account_sid: String,
    token: SecretString,
    token_digest: [u8; 32],
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

/// The configured API clients, by account SID.
#[derive(Clone, Debug, Default)]
pub struct ApiClients {
    clients: HashMap<String, ApiClient>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiClientsError {
    #[error(
        "`{0}` is not an account SID (AC followed by 32 hex digits), optionally with /<generation>"
    )]
    BadSid(String),
    #[error("account SID {0} is listed twice")]
    Duplicate(String),
    #[error(
        "SMSGATE_API_CLIENTS needs SMSGATE_API_SECRET of at least {MIN_SECRET_LEN} characters to derive the clients' tokens"
    )]
    NoSecret,
}

/// `AC` + 32 hex digits.
pub fn is_account_sid(sid: &str) -> bool {
    sid.strip_prefix("AC")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The auth token of `account_sid` in its `generation` under `secret`.
pub fn derive_token(secret: &str, account_sid: &str, generation: u32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"smsgate api token\0");
    mac.update(account_sid.as_bytes());
    mac.update(b"\0");
    mac.update(generation.to_string().as_bytes());
    let mut token = hex::encode(mac.finalize().into_bytes());
    token.truncate(32);
    token
}

/// Splits `AC…` or `AC…/<generation>`; generation 1 when none is given.
pub fn parse_entry(entry: &str) -> Result<(String, u32), ApiClientsError> {
    let bad = || ApiClientsError::BadSid(entry.to_owned());
    let (sid, generation) = match entry.split_once('/') {
        Some((sid, generation)) => (sid, generation.parse().map_err(|_| bad())?),
        None => (entry, 1),
    };
    if !is_account_sid(sid) || generation == 0 {
        return Err(bad());
    }
    Ok((sid.to_owned(), generation))
}

impl ApiClients {
    /// `AC…,AC…/2` (comma or whitespace separated) under `secret`. An empty list is no client.
    pub fn parse(list: &str, secret: Option<&SecretString>) -> Result<Self, ApiClientsError> {
        let entries: Vec<&str> = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::default());
        }
        let secret = secret
            .map(ExposeSecret::expose_secret)
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .ok_or(ApiClientsError::NoSecret)?;
        let mut clients = HashMap::new();
        for entry in entries {
            let (sid, generation) = parse_entry(entry)?;
            let token = derive_token(secret, &sid, generation);
            let client = ApiClient {
                account_sid: sid.clone(),
                token_digest: Sha256::digest(token.as_bytes()).into(),
                token: SecretString::from(token),
            };
            if clients.insert(sid.clone(), client).is_some() {
                return Err(ApiClientsError::Duplicate(sid));
            }
        }
        Ok(Self { clients })
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client whose basic-auth credentials `headers` carry, if they are right.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<&ApiClient> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (sid, token) = decoded.split_once(':')?;
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let client = self.clients.get(sid)?;
        bool::from(client.token_digest.ct_eq(&given)).then_some(client)
    }

    /// Every client's auth token by account SID: what the dispatcher signs their callbacks with.
    pub fn tokens(&self) -> HashMap<String, SecretString> {
        self.clients
            .iter()
            .map(|(sid, c)| (sid.clone(), c.token.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    #[test]
    fn tokens_are_derived_and_checked_from_basic_auth() {
        let secret = SecretString::from("a-long-server-secret");
        let clients = ApiClients::parse(SID, Some(&secret)).unwrap();
        let token = derive_token("a-long-server-secret", SID, 1);
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            clients
                .authenticate(&basic(SID, &token))
                .map(|c| c.account_sid.as_str()),
            Some(SID)
        );
        assert!(clients.authenticate(&basic(SID, "wrong")).is_none());
        assert!(clients.authenticate(&basic(SID, "")).is_none());
        let other = "AC00000000000000000000000000000000";
        assert!(clients.authenticate(&basic(other, &token)).is_none());
        assert!(clients.authenticate(&HeaderMap::new()).is_none());
        assert_eq!(clients.tokens()[SID].expose_secret(), token);
    }

    #[test]
    fn a_new_generation_rotates_one_token() {
        let secret = SecretString::from("a-long-server-secret");
        let rotated = ApiClients::parse(&format!("{SID}/2"), Some(&secret)).unwrap();
        let old = derive_token("a-long-server-secret", SID, 1);
        let new = derive_token("a-long-server-secret", SID, 2);
        assert_ne!(old, new);
        assert!(rotated.authenticate(&basic(SID, &old)).is_none());
        assert!(rotated.authenticate(&basic(SID, &new)).is_some());
    }

    #[test]
    fn bad_lists_and_missing_secrets_are_refused() {
        let secret = SecretString::from("a-long-server-secret");
        assert!(ApiClients::parse("", None).unwrap().is_empty());
        assert_eq!(
            ApiClients::parse(SID, None).unwrap_err(),
            ApiClientsError::NoSecret
        );
        assert_eq!(
            ApiClients::parse(SID, Some(&SecretString::from("short"))).unwrap_err(),
            ApiClientsError::NoSecret
        );
        for bad in [
            "XX0123456789abcdef0123456789abcdef",
            "AC0123",
            &format!("{SID}/0"),
            &format!("{SID}/x"),
        ] {
            assert!(
                matches!(
                    ApiClients::parse(bad, Some(&secret)),
                    Err(ApiClientsError::BadSid(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            ApiClients::parse(&format!("{SID}, {SID}/2"), Some(&secret)).unwrap_err(),
            ApiClientsError::Duplicate(SID.into())
        );
    }
}
