//! `App`: connect, compose the routers of the chosen roles, serve until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::any;
use fred::clients::Pool;
use ingest::{ApiError, IngestState, PolicyInForce, TrustedProxies};
use limiter::{RateLimiter, Ruleset};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, AdminToken, Auth, Sessions, Throttle};
use crate::cli::{ServerLimits, Settings};
use crate::health::{self, HealthState};
use crate::roles::{self, RoleContext};
use crate::{dashboard, openapi, server, telemetry};

/// Which roles this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub projector: bool,
    pub archiver: bool,
    pub dispatcher: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        ingest: true,
        projector: true,
        archiver: true,
        dispatcher: true,
    };
    pub const INGEST: Self = Self {
        ingest: true,
        projector: false,
        archiver: false,
        dispatcher: false,
    };
    pub const PROJECTOR: Self = Self {
        ingest: false,
        projector: true,
        archiver: false,
        dispatcher: false,
    };
    pub const DISPATCHER: Self = Self {
        ingest: false,
        projector: false,
        archiver: false,
        dispatcher: true,
    };
    pub const ARCHIVER: Self = Self {
        ingest: false,
        projector: false,
        archiver: true,
        dispatcher: false,
    };

    fn name(self) -> &'static str {
        match (self.ingest, self.projector, self.archiver, self.dispatcher) {
            (true, true, true, true) => "serve",
            (true, false, false, false) => "ingest",
            (false, true, false, false) => "projector",
            (false, false, true, false) => "archiver",
            (false, false, false, true) => "dispatcher",
            _ => "custom",
        }
    }
}

/// A built, listening smsgate process.
pub struct App {
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The largest request body any route reads (`POST /api/sms` has its own, smaller limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long in-flight requests and workers get to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

impl App {
    pub async fn build(settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        let token = admin_token(&settings)?;
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
            let rules = settings.rules()?;
            let api_clients = Arc::new(settings.api_clients()?);
            public = public.merge(ingest_router(&ctx, rules, api_clients).await);
        }
        if roles.ingest || roles.dispatcher {
            public = public.merge(roles::dispatcher::public_routes(&settings, redis.clone()));
        }
        if roles.dispatcher {
            roles::dispatcher::start(&ctx).await?;
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

        let auth = Auth {
            token,
            sessions: Sessions::new(
                redis.clone(),
                settings.namespace.clone(),
                settings.session_ttl,
            ),
            throttle: Throttle::new(
                redis.clone(),
                settings.namespace.clone(),
                settings.auth_max_failures,
            ),
            proxies: Arc::new(settings.trusted_proxies.clone()),
        };
        operator = operator
            .merge(health::metrics_router(metrics))
            .merge(openapi::router(roles))
            .route_layer(from_fn_with_state(auth.clone(), auth::require_admin));
        let router = Router::new()
            .merge(public)
            .merge(operator)
            .merge(auth::router(auth))
            .merge(health::router(HealthState { redis, postgres }))
            .route("/api/{*rest}", any(|| async { ApiError::NotFound }))
            .route_layer(from_fn(ingest::telemetry::track_http))
            .merge(dashboard::router(&settings.dashboard_dir))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Ok(Self {
            listener,
            router,
            limits: settings.server.clone(),
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
            limits,
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
        let server = tokio::spawn(server::serve(listener, router, limits, signal));
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

/// The admin token in force. Without one the operator API is open, which is allowed only on
/// a loopback address with no proxy in front (a proxy makes a loopback bind public).
fn admin_token(settings: &Settings) -> anyhow::Result<AdminToken> {
    let (token, weak) = match AdminToken::judge(settings.admin_token.as_ref()) {
        Ok(token) => (token, None),
        Err(weak) => (AdminToken::none(), Some(weak)),
    };
    if token.is_set() {
        return Ok(token);
    }
    let why = weak.map_or_else(
        || "SMSGATE_ADMIN_TOKEN is not set".to_owned(),
        |w| w.to_string(),
    );
    if !settings.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {} without an admin token ({why}): the operator API would be open to the network",
            settings.listen
        );
    }
    if settings.trusted_proxies != TrustedProxies::default() {
        anyhow::bail!(
            "refusing to serve behind SMSGATE_TRUSTED_PROXIES without an admin token ({why}): the proxy would open the operator API to its clients"
        );
    }
    if let Some(weak) = weak {
        tracing::warn!(reason = %weak, "the admin token is ignored; the operator API is open on loopback");
    }
    Ok(token)
}

pub(crate) async fn connect_redis(url: &str) -> anyhow::Result<Pool> {
    let pool = limiter::connection::connect(url, 4, Duration::from_secs(5))
        .await
        .with_context(|| format!("invalid REDIS_URL {url}"))?;
    if !limiter::connection::is_up(&pool) {
        tracing::warn!(%url, "redis is not reachable yet; failing closed until it is");
    }
    Ok(pool)
}

/// A pool of `size` connections to `url`, or an error when Redis does not answer: for the
/// one-shot commands, which have nothing to serve while it is down.
pub(crate) async fn reachable_redis(url: &str, size: usize) -> anyhow::Result<Pool> {
    let redis = limiter::connection::connect(url, size, Duration::from_secs(5))
        .await
        .with_context(|| format!("invalid REDIS_URL {url}"))?;
    anyhow::ensure!(
        limiter::connection::is_up(&redis),
        "redis is not reachable at {url}"
    );
    Ok(redis)
}

/// Redis (`redis_size` connections, reachable now) and the archive database, for the one-shot
/// commands that read both (`replay`, `audit`, `archiver --once`, `projector --rebuild`).
pub(crate) async fn connect_stores(
    settings: &Settings,
    redis_size: usize,
) -> anyhow::Result<(Pool, sqlx::PgPool)> {
    let redis = reachable_redis(&settings.redis_url, redis_size).await?;
    let pg = archiver::connect_postgres(&settings.database_url)
        .await
        .context("connecting to the archive database")?;
    Ok((redis, pg))
}

async fn ingest_router(
    ctx: &RoleContext,
    rules: Ruleset,
    api_clients: Arc<ingest::ApiClients>,
) -> Router {
    let settings = &ctx.settings;
    tracing::info!(policy = %rules, "policy in force");
    let privacy = (settings.store_message, settings.body_ttl());
    let limiter = RateLimiter::with_rules(rules, settings.layout())
        .with_privacy(privacy.0, privacy.1)
        .with_group_commit();
    if let Err(e) = limiter.load(ctx.redis.next()).await {
        tracing::warn!(error = %e, "could not preload the decision script; EVALSHA will load it");
    }
    let policy = Arc::new(ArcSwap::from_pointee(PolicyInForce::new(limiter)));
    if let Some(path) = settings.policy_file.clone() {
        let (policy, layout, shutdown) = (policy.clone(), settings.layout(), ctx.shutdown.clone());
        ctx.tasks
            .spawn(reload_on_sighup(path, policy, layout, privacy, shutdown));
    }
    ingest::router(IngestState {
        policy,
        redis: ctx.redis.clone(),
        trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        test_numbers: Arc::new(settings.test_numbers.clone()),
        status_callbacks: crate::cli::given(&settings.delivery.callback_secret).is_some(),
        api_clients,
    })
}

/// Re-reads the policy file on every SIGHUP. A file that parses replaces the limiter in one
/// atomic swap (a request in flight finishes under the policy it started with); one that does
/// not is refused, the policy in force stays, and the log says why.
async fn reload_on_sighup(
    path: std::path::PathBuf,
    policy: Arc<ArcSwap<PolicyInForce>>,
    layout: limiter::Layout,
    privacy: (limiter::StoreMessage, std::time::Duration),
    shutdown: CancellationToken,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the policy file will not be reloaded");
            return;
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            match crate::cli::load_rules(&path) {
                Ok(rules) => {
                    tracing::info!(policy = %rules, file = %path.display(), "SIGHUP: policy reloaded");
                    let reloaded = RateLimiter::with_rules(rules, layout.clone())
                        .with_privacy(privacy.0, privacy.1)
                        .with_group_commit();
                    policy.store(Arc::new(PolicyInForce::new(reloaded)));
                }
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "SIGHUP: policy file refused; the policy in force stays"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, limiter, layout, privacy);
        shutdown.cancelled().await;
    }
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
