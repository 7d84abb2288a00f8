//! Liveness, readiness and metrics endpoints, the same on every role. `/metrics` is part of
//! the operator surface (behind the admin token; Prometheus sends it as a bearer token);
//! `/healthz` and `/readyz` stay open for load balancers and orchestrators, and say nothing
//! beyond up or down.

use std::fmt::Display;
use std::future::Future;
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
use serde_json::json;

#[derive(Clone)]
pub struct HealthState {
    pub redis: Pool,
    /// Checked too when a role of this process writes or reads Postgres.
    pub postgres: Option<sqlx::PgPool>,
}

/// `/healthz` and `/readyz`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `/metrics`, for the operator routes.
pub fn metrics_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
}

/// How long `/readyz` waits for each dependency. Probes commonly time out after 1 s; a
/// dependency that has not answered by then counts as down, rather than the probe waiting on a
/// pool's acquire timeout (Postgres: 5 s) and getting no answer at all.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

async fn readyz(State(state): State<HealthState>) -> Response {
    let redis = check(state.redis.next_connected().ping::<String>(None));
    let postgres = async {
        match &state.postgres {
            None => None,
            Some(pool) => Some(check(sqlx::query("SELECT 1").execute(pool)).await),
        }
    };
    // Both at once, so the answer comes within one timeout even with both down.
    let (redis, postgres) = tokio::join!(redis, postgres);
    let ready = redis == "ok" && postgres.as_deref().is_none_or(|p| p == "ok");
    if ready {
        axum::Json(json!({"status": "ready", "redis": redis, "postgres": postgres})).into_response()
    } else {
        tracing::warn!(%redis, ?postgres, "not ready");
        ApiError::Unavailable { retry_after: 1 }.into_response()
    }
}

/// `"ok"`, or why the dependency is not ready (its error, or no answer in time).
async fn check<T, E: Display>(probe: impl Future<Output = Result<T, E>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    }
}

async fn render_metrics(State(metrics): State<PrometheusHandle>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}
