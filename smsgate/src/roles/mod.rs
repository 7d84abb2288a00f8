//! How each role starts inside an `App`: it gets the shared resources and hands back the
//! routes it serves. Background work is spawned on `ctx.tasks` and stops with `ctx.shutdown`.

pub mod archiver;
pub mod dispatcher;
pub mod projector;

use std::time::Duration;

use axum::Router;
use eventlog::ConsumerName;
use fred::clients::Pool;
use limiter::Layout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::Settings;

/// What every role is started with.
pub struct RoleContext {
    pub settings: Settings,
    pub redis: Pool,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// What a role gives back to the `App`.
#[derive(Default)]
pub struct RoleParts {
    /// Operator routes; the `App` puts them behind the admin token.
    pub operator_routes: Router,
    /// Set when the role uses Postgres, so `/readyz` checks it too.
    pub postgres: Option<sqlx::PgPool>,
}

/// This host's name, part of every consumer name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}

/// A stable consumer name for `group` on this host (see `eventlog::ConsumerName`), so a
/// restarted process resumes its own pending entries at once. Retried until Redis answers;
/// `None` when `shutdown` came first.
pub async fn consumer_name(
    redis: &Pool,
    layout: &Layout,
    group: &str,
    shutdown: &CancellationToken,
) -> Option<ConsumerName> {
    let host = hostname();
    let mut wait = Duration::from_millis(200);
    loop {
        match ConsumerName::acquire(redis.next(), layout, group, &host).await {
            Ok(name) => {
                tracing::info!(consumer = %name.name, "consumer name acquired");
                return Some(name);
            }
            Err(e) => {
                tracing::warn!(group, error = %e, retry_in = ?wait, "acquiring a consumer name failed")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Gives the name back at a clean shutdown; a crashed process gives it back by not running.
pub async fn release_consumer_name(redis: &Pool, name: &ConsumerName) {
    if let Err(e) = name.release(redis.next()).await {
        tracing::warn!(consumer = %name.name, error = %e, "releasing the consumer name failed");
    }
}
