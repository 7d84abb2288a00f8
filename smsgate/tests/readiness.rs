//! `/readyz` answers within a second when a dependency is down, so a probe with a 1 s timeout
//! sees the outage instead of getting no answer (the Postgres pool alone waits 5 s).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

#[tokio::test]
async fn readyz_answers_503_within_a_second_when_postgres_is_down() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = limiter::connection::connect(&redis_url, 1, Duration::from_secs(5))
        .await
        .unwrap();
    // A Postgres that is not running: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pg = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/smsgate"))
        .unwrap();
    let app = smsgate::health::router(smsgate::health::HealthState {
        redis,
        postgres: Some(pg),
    });
    let started = Instant::now();
    let response = app
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
}
