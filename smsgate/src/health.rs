//! Liveness, readiness and metrics endpoints, the same on every role.

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
    pub metrics: PrometheusHandle,
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
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

async fn render_metrics(State(state): State<HealthState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
