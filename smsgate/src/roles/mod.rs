//! How each role starts inside an `App`: it gets the shared resources and hands back the
//! routes it serves. Background work is spawned on `ctx.tasks` and stops with `ctx.shutdown`.

pub mod archiver;
pub mod projector;

use axum::Router;
use fred::clients::Pool;
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

/// A name unique to this process, for consumer groups: host and pid.
pub fn consumer_name(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{role}-{host}-{}", std::process::id())
}
