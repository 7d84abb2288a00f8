//! Liveness, readiness and metrics endpoints, the same on every role. `/metrics` is part of
//! the operator surface (behind the admin token; Prometheus sends it as a bearer token);
//! `/healthz` and `/readyz` stay open for load balancers and orchestrators, and say nothing
//! beyond up or down.

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

async fn readyz(State(state): State<HealthState>) -> Response {
    let redis = match state.redis.next_connected().ping::<String>(None).await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let postgres = match &state.postgres {
        None => None,
        Some(pool) => Some(match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }),
    };
    let ready = redis == "ok" && postgres.as_deref().is_none_or(|p| p == "ok");
    if ready {
        axum::Json(json!({"status": "ready", "redis": redis, "postgres": postgres})).into_response()
    } else {
        tracing::warn!(%redis, ?postgres, "not ready");
        ApiError::Unavailable { retry_after: 1 }.into_response()
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
