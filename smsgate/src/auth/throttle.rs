//! Failed logins and wrong bearer tokens, counted per client in Redis (so every replica
//! shares the count): after `SMSGATE_AUTH_MAX_FAILURES` within [`WINDOW`] the client gets 429 with
//! `Retry-After` until the window ends, whatever it presents.

use std::net::IpAddr;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use fred::types::ExpireOptions;

/// How long a client's failures are remembered, counted from its first.
pub const WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Throttle {
    redis: Pool,
    namespace: String,
    /// Failures a client may make within one window.
    max_failures: i64,
}

impl Throttle {
    pub fn new(redis: Pool, namespace: String, max_failures: i64) -> Self {
        Self {
            redis,
            namespace,
            max_failures,
        }
    }

    fn key(&self, client: IpAddr) -> String {
        format!("{}:auth-failures:{client}", self.namespace)
    }

    /// Seconds until `client` may try again, when it has used up its failures.
    pub async fn blocked(&self, client: IpAddr) -> Result<Option<u64>, fred::error::Error> {
        let key = self.key(client);
        let failures: Option<i64> = self.redis.get(&key).await?;
        if failures.unwrap_or(0) < self.max_failures {
            return Ok(None);
        }
        let ttl: i64 = self.redis.ttl(&key).await?;
        Ok(Some(u64::try_from(ttl).unwrap_or(1).max(1)))
    }

    /// Counts one failure of `client`.
    pub async fn fail(&self, client: IpAddr) -> Result<(), fred::error::Error> {
        let key = self.key(client);
        let _: i64 = self.redis.incr(&key).await?;
        // NX: the window runs from the first failure, and a lost reply can never leave the
        // counter without an expiry (the next failure sets it).
        let window = i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX);
        let _: i64 = self
            .redis
            .expire(&key, window, Some(ExpireOptions::NX))
            .await?;
        Ok(())
    }
}
