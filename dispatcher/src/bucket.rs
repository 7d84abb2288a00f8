//! `SMSGATE_PROVIDER_TPS`: a token bucket in Redis that every dispatcher replica draws from,
//! so the provider sees at most that many sends a second however many replicas run.

use std::time::Duration;

use fred::clients::Client;
use fred::types::scripts::Script;

const BUCKET_LUA: &str = include_str!("bucket.lua");

#[derive(Clone, Debug)]
pub struct TokenBucket {
    key: String,
    rate: u32,
    script: Script,
}

impl TokenBucket {
    /// `rate` tokens a second (at least 1), one second's worth of burst.
    pub fn new(key: String, rate: u32) -> Self {
        Self {
            key,
            rate: rate.max(1),
            script: Script::from_lua(BUCKET_LUA),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes a token and says how long to wait before using it.
    pub async fn reserve(&self, redis: &Client) -> Result<Duration, fred::error::Error> {
        let args = vec![self.rate.to_string(), self.rate.to_string()];
        let wait: i64 = self
            .script
            .evalsha_with_reload(redis, vec![self.key.as_str()], args)
            .await?;
        Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }

    /// Waits for a token.
    pub async fn take(&self, redis: &Client) -> Result<(), fred::error::Error> {
        let wait = self.reserve(redis).await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}
