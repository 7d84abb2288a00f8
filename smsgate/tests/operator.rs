//! The operator surface behind the admin token: every operator route answers 401
//! problem+json without it, and serves with a bearer token or the dashboard's session cookie.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use smsgate::Roles;
use support::TestApp;

const OPERATOR_ROUTES: &[&str] = &[
    "/api/stats",
    "/api/events",
    "/api/events?outcome=rejected",
    "/api/clients/127.0.0.1/%2B14155550123",
    "/api/openapi.json",
    "/api/live",
    "/metrics",
];

#[tokio::test]
async fn every_operator_route_needs_the_token_when_one_is_configured() {
    let app = TestApp::spawn(Roles::ALL, |s| {
        s.admin_token = Some(support::ADMIN_TOKEN.into())
    })
    .await;
    for route in OPERATOR_ROUTES {
        let anonymous = app.http.get(app.url(route)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(
            anonymous.headers()["content-type"],
            "application/problem+json"
        );
        let wrong = app
            .http
            .get(app.url(route))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{route}");
        let admitted = app
            .http
            .get(app.url(route))
            .bearer_auth(support::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(admitted.status(), StatusCode::OK, "{route}");
    }
    let login = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"token": support::ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let stats = app
        .http
        .get(app.url("/api/stats"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    // Health stays open for load balancers and orchestrators. Readiness waits for the archive
    // database, which the archiver creates in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for open in ["/healthz"] {
        assert_eq!(
            app.http.get(app.url(open)).send().await.unwrap().status(),
            StatusCode::OK,
            "{open}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn without_a_token_on_loopback_the_operator_routes_are_open() {
    let app = TestApp::spawn(Roles::ALL, |s| s.admin_token = None).await;
    for route in OPERATOR_ROUTES.iter().filter(|r| **r != "/api/live") {
        let response = app.http.get(app.url(route)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{route}");
    }
    app.cleanup().await;
}
