//! Lua scripts as every role runs them: the SHA-1 computed once, `EVALSHA` on every call, and
//! a `SCRIPT LOAD` on every primary and one retry when Redis answers `NOSCRIPT` (after a
//! restart or a failover), never the whole source on every call.

use fred::clients::Client;
use fred::prelude::FromValue;
use fred::types::{MultipleKeys, MultipleValues};

/// A Lua script and its SHA-1, built once (e.g. in a `LazyLock`) and shared.
#[derive(Clone, Debug)]
pub struct Script(fred::types::scripts::Script);

impl Script {
    pub fn new(lua: &'static str) -> Self {
        Self(fred::types::scripts::Script::from_lua(lua))
    }

    /// `EVALSHA`, loading the script on every primary and retrying once on `NOSCRIPT`.
    pub async fn run<R, K, V>(
        &self,
        redis: &Client,
        keys: K,
        args: V,
    ) -> Result<R, fred::error::Error>
    where
        R: FromValue,
        K: Into<MultipleKeys> + Send,
        V: TryInto<MultipleValues> + Send,
        V::Error: Into<fred::error::Error> + Send,
    {
        self.0.evalsha_with_reload(redis, keys, args).await
    }

    pub fn sha1(&self) -> &str {
        self.0.sha1()
    }
}
