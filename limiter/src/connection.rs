//! Redis connections as every role wants them: reconnecting forever in the background, never
//! retrying a command (a retried script could decide twice), and bounded by a timeout so a
//! dead Redis turns into a fast error instead of a hung request.

use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::Builder;
use fred::types::config::{Config, ReconnectPolicy};

/// How long one command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a pool of `size` connections to `url` (`redis://…` or `redis-cluster://…`) and starts
/// connecting. It waits up to `wait` for the first connection but returns either way: until
/// Redis answers, callers see `is_connected() == false` and fail closed.
pub async fn connect(url: &str, size: usize, wait: Duration) -> Result<Pool, fred::error::Error> {
    let mut config = Config::from_url(url)?;
    // Let the reconnect policy also cover the very first connection.
    config.fail_fast = false;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.max_command_attempts = 1;
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
        })
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .set_policy(ReconnectPolicy::new_constant(0, 200))
        .build_pool(size.max(1))?;
    pool.connect_pool();
    let _ = tokio::time::timeout(wait, pool.wait_for_connect()).await;
    Ok(pool)
}

/// True when at least one connection of the pool is up.
pub fn is_up(pool: &Pool) -> bool {
    pool.clients().iter().any(|c| c.is_connected())
}
