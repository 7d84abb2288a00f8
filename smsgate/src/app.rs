//! `App`: connect, compose the routers of the chosen roles, serve until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::any;
use fred::clients::Pool;
use ingest::{ApiError, IngestState};
use limiter::RateLimiter;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, AdminToken};
use crate::cli::Settings;
use crate::health::{self, HealthState};
use crate::roles::{self, RoleContext};
use crate::{dashboard, telemetry};

/// Which roles this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub projector: bool,
    pub archiver: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        ingest: true,
        projector: true,
        archiver: true,
    };
    pub const INGEST: Self = Self {
        ingest: true,
        projector: false,
        archiver: false,
    };
    pub const PROJECTOR: Self = Self {
        ingest: false,
        projector: true,
        archiver: false,
    };
    pub const ARCHIVER: Self = Self {
        ingest: false,
        projector: false,
        archiver: true,
    };

    fn name(self) -> &'static str {
        match (self.ingest, self.projector, self.archiver) {
            (true, true, true) => "serve",
            (true, false, false) => "ingest",
            (false, true, false) => "projector",
            (false, false, true) => "archiver",
            _ => "custom",
        }
    }
}

/// A built, listening smsgate process.
pub struct App {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// How long in-flight requests and workers get to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

impl App {
    pub async fn build(settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        if !settings.listen.ip().is_loopback() && settings.admin_token.is_none() {
            anyhow::bail!(
                "refusing to listen on {} without SMSGATE_ADMIN_TOKEN: the operator API would be open to the network",
                settings.listen
            );
        }
        let metrics = telemetry::prometheus();
        telemetry::record_build_info(roles.name());
        let redis = connect_redis(&settings.redis_url).await?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ctx = RoleContext {
            settings: settings.clone(),
            redis: redis.clone(),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        };

        let mut public = Router::new();
        let mut operator = Router::new();
        let mut postgres = None;
        if roles.ingest {
            public = public.merge(ingest_router(&settings, redis.clone()).await);
        }
        if roles.projector {
            let parts = roles::projector::start(&ctx).await?;
            operator = operator.merge(parts.operator_routes);
            postgres = postgres.or(parts.postgres);
        }
        if roles.archiver {
            let parts = roles::archiver::start(&ctx).await?;
            operator = operator.merge(parts.operator_routes);
            postgres = postgres.or(parts.postgres);
        }

        let token = AdminToken::new(settings.admin_token.clone());
        operator = operator
            .merge(health::metrics_router(metrics))
            .route_layer(from_fn_with_state(token.clone(), auth::require_admin));
        let router = Router::new()
            .merge(public)
            .merge(operator)
            .merge(auth::router(token))
            .merge(health::router(HealthState { redis, postgres }))
            .route("/api/{*rest}", any(|| async { ApiError::NotFound }))
            .route_layer(from_fn(ingest::telemetry::track_http))
            .merge(dashboard::router(&settings.dashboard_dir));

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Ok(Self {
            listener,
            router,
            shutdown,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A token that stops the app when cancelled (tests use it instead of a signal).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `stop` resolves or the shutdown token is cancelled, then gives requests and
    /// workers [`GRACE`] to finish.
    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            shutdown,
            tasks,
        } = self;
        let signal = shutdown.clone();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop => trigger.cancel(),
                () = trigger.cancelled() => {}
            }
        });
        tracing::info!(addr = %listener.local_addr()?, "smsgate listening");
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { signal.cancelled().await });
        let server = tokio::spawn(async move { server.await });
        shutdown.cancelled().await;
        tasks.close();
        let drained = tokio::time::timeout(GRACE, async {
            let _ = server.await;
            tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("stopped before every request and worker finished");
        }
        Ok(())
    }
}

async fn connect_redis(url: &str) -> anyhow::Result<Pool> {
    let pool = limiter::connection::connect(url, 4, Duration::from_secs(5))
        .await
        .with_context(|| format!("invalid REDIS_URL {url}"))?;
    if !limiter::connection::is_up(&pool) {
        tracing::warn!(%url, "redis is not reachable yet; failing closed until it is");
    }
    Ok(pool)
}

async fn ingest_router(settings: &Settings, redis: Pool) -> Router {
    ingest::telemetry::register(&settings.limits);
    let limiter = RateLimiter::new(settings.limits.clone(), settings.layout());
    if let Err(e) = limiter.load(redis.next()).await {
        tracing::warn!(error = %e, "could not preload the decision script; EVALSHA will load it");
    }
    ingest::router(IngestState {
        limiter: Arc::new(limiter),
        redis,
        trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        status_callbacks: settings.delivery.callback_secret.is_some(),
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("stop signal received; finishing in-flight work");
}
