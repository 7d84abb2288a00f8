//! Liveness, readiness and metrics endpoints, the same on every role. `/metrics` is part of
//! the operator surface (behind the admin token; Prometheus sends it as a bearer token);
//! `/healthz` and `/readyz` stay open for load balancers and orchestrators, and say nothing
//! beyond up or down.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fred::clients::Pool;
use fred::interfaces::ClientLike;
use ingest::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use problem::openapi::{ProblemSchema, TokenProblems};
use serde::Serialize;

/// How long `/readyz` waits for each dependency: a probe with a 1 s timeout must get an
/// answer, so a dependency slower than this counts as down (the Postgres pool alone would wait
/// its 5 s acquire timeout).
pub const READY_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone)]
pub struct HealthState {
    pub redis: Pool,
    /// Checked too when a role of this process writes or reads Postgres.
    pub postgres: Option<sqlx::PgPool>,
}

/// `/healthz` and `/readyz`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
}

/// `GET /readyz` when ready.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    pub status: &'static str,
    /// `ok`, or why Redis cannot be reached.
    pub redis: String,
    /// For roles that use Postgres: `ok`, or why it cannot be reached.
    pub postgres: Option<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)), security(()))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// `/metrics`, for the operator routes.
pub fn metrics_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
}

/// Waits up to [`READY_TIMEOUT`] for `check`: "ok", or why not.
async fn within<E: std::fmt::Display>(check: impl Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    }
}

/// Redis answers (and Postgres, for roles that use it).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Ready),
        (status = 503, description = "a backend is unreachable", body = ProblemSchema, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    ),
    security(())
)]
pub async fn readyz(State(state): State<HealthState>) -> Response {
    let redis = within(async {
        state
            .redis
            .next_connected()
            .ping::<String>(None)
            .await
            .map(drop)
    });
    let postgres = async {
        match &state.postgres {
            None => None,
            Some(pool) => {
                Some(within(async { sqlx::query("SELECT 1").execute(pool).await.map(drop) }).await)
            }
        }
    };
    // Both at once: the answer never takes longer than one timeout.
    let (redis, postgres) = tokio::join!(redis, postgres);
    let ready = redis == "ok" && postgres.as_deref().is_none_or(|p| p == "ok");
    if ready {
        axum::Json(Ready {
            status: "ready",
            redis,
            postgres,
        })
        .into_response()
    } else {
        tracing::warn!(%redis, ?postgres, "not ready");
        ApiError::unavailable("a dependency is down").into_response()
    }
}

/// Prometheus metrics (names in `docs/metrics.md`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operator",
    responses(
        (status = 200, description = "the Prometheus text format", body = String, content_type = "text/plain"),
        TokenProblems,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn render_metrics(State(metrics): State<PrometheusHandle>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}
