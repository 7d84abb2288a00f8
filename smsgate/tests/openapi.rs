//! The OpenAPI document is generated from the handlers: `GET /api/openapi.json` of a process
//! running every role lists every route of the contract (`docs/operator-api.md`) and nothing
//! else, and every schema it references is in it. Whoever adds a route adds it to `ROUTES`,
//! to the contract, and annotates its handler; schemathesis (`scripts/test`) then checks the
//! route against the document.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use smsgate::Roles;
use support::TestApp;

/// Every route `smsgate serve` answers, as OpenAPI path templates.
const ROUTES: &[&str] = &[
    "/api/sms",
    "/api/sms/{id}",
    "/api/providers/twilio/status",
    "/api/session",
    "/api/login",
    "/api/logout",
    "/api/stats",
    "/api/stats/delivery",
    "/api/events",
    "/api/clients/{ip}/{to}",
    "/api/live",
    "/api/history",
    "/api/audit",
    "/api/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
];

#[tokio::test]
async fn the_served_document_describes_every_route_and_only_those() {
    let app = TestApp::spawn(Roles::ALL, |s| {
        s.admin_token = Some(support::ADMIN_TOKEN.into())
    })
    .await;
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // What is served is what `smsgate openapi` prints (the dashboard's types come from it).
    assert_eq!(
        doc,
        serde_json::to_value(smsgate::openapi::document(Roles::ALL)).unwrap()
    );

    let contract = include_str!("../../docs/operator-api.md");
    let paths = doc["paths"].as_object().unwrap();
    for route in ROUTES {
        assert!(
            contract.contains(route),
            "{route} is not in operator-api.md"
        );
        assert!(paths.contains_key(*route), "{route} is not in openapi.json");
    }
    for path in paths.keys() {
        assert!(ROUTES.contains(&path.as_str()), "{path} is not a route");
    }
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn each_role_documents_only_the_routes_it_serves() {
    let ingest = serde_json::to_value(smsgate::openapi::document(Roles::INGEST)).unwrap();
    let paths = ingest["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/sms"));
    assert!(!paths.contains_key("/api/stats"), "the projector's route");
    assert!(!paths.contains_key("/api/history"), "the archiver's route");
}
