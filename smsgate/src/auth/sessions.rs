//! Dashboard sessions, kept server-side in Redis so every replica sees a login and a logout.
//!
//! A session id is 32 random bytes, handed to the browser in an `HttpOnly` cookie. Redis holds
//! only `<namespace>:session:<HMAC(token, id)>` with the session's lifetime as its TTL: the id
//! itself is never stored, a logout deletes the key, and a new admin token derives other keys,
//! so rotating the token revokes every session at once.

use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use fred::types::{Expiration, SetOptions};
use rand::RngCore;

use super::token::AdminToken;

/// Hex characters in a session id (32 bytes).
const ID_CHARS: usize = 64;

#[derive(Clone)]
pub struct Sessions {
    redis: Pool,
    namespace: String,
    ttl: Duration,
}

impl Sessions {
    pub fn new(redis: Pool, namespace: String, ttl: Duration) -> Self {
        Self {
            redis,
            namespace,
            ttl,
        }
    }

    /// How long a session lives after login.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, token: &AdminToken, id: &str) -> Option<String> {
        // Anything that is not one of our ids never reaches Redis, whatever its size.
        if id.len() != ID_CHARS || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digest = token.sign(id.as_bytes())?;
        Some(format!("{}:session:{digest}", self.namespace))
    }

    /// A new session under `token`; its id goes into the cookie.
    pub async fn create(&self, token: &AdminToken) -> Result<String, fred::error::Error> {
        let mut bytes = [0u8; ID_CHARS / 2];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let Some(key) = self.key(token, &id) else {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::InvalidArgument,
                "no admin token to sign a session with",
            ));
        };
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let () = self
            .redis
            .set(
                key,
                1,
                Some(Expiration::EX(ttl)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(id)
    }

    /// True while the session `id` exists under `token`.
    pub async fn is_valid(&self, token: &AdminToken, id: &str) -> Result<bool, fred::error::Error> {
        let Some(key) = self.key(token, id) else {
            return Ok(false);
        };
        let found: i64 = self.redis.exists(key).await?;
        Ok(found == 1)
    }

    /// Ends the session `id` (logout).
    pub async fn revoke(&self, token: &AdminToken, id: &str) -> Result<(), fred::error::Error> {
        if let Some(key) = self.key(token, id) {
            let _: i64 = self.redis.del(key).await?;
        }
        Ok(())
    }
}
