//! `SMSGATE_PROVIDER_TPS`: a token bucket in Redis that every dispatcher replica draws from,
//! so the provider sees at most that many sends a second however many replicas run.

use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::LuaInterface;

const BUCKET_LUA: &str = include_str!("bucket.lua");

#[derive(Clone, Debug)]
pub struct TokenBucket {
    key: String,
    rate: u32,
    sha: String,
}

impl TokenBucket {
    /// `rate` tokens a second (at least 1), one second's worth of burst.
    pub fn new(key: String, rate: u32) -> Self {
        Self {
            key,
            rate: rate.max(1),
            sha: fred::util::sha1_hash(BUCKET_LUA),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes a token and says how long to wait before using it.
    pub async fn reserve(&self, redis: &Client) -> Result<Duration, fred::error::Error> {
        let args = vec![self.rate.to_string(), self.rate.to_string()];
        let call = || {
            redis.evalsha::<i64, _, _, _>(self.sha.as_str(), vec![self.key.as_str()], args.clone())
        };
        let wait = match call().await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                redis.script_load_cluster::<(), _>(BUCKET_LUA).await?;
                call().await?
            }
            other => other?,
        };
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
