//! The OpenAPI document, generated from the handlers and their types in every crate (utoipa),
//! so it cannot drift from what the server does. Each role's crate describes its own routes;
//! this module adds the binary's (session, health, metrics, this document), merges the roles a
//! process runs and serves the result at `GET /api/openapi.json`. `smsgate openapi` prints the
//! document of `smsgate serve`, from which the dashboard's TypeScript types are generated.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use problem::openapi::TokenProblems;

use crate::app::Roles;
use crate::{auth, health};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "smsgate",
        description = "A rate-limited SMS gateway: the public API (`POST /api/sms`) and the operator surface.",
        license(name = "MIT")
    ),
    paths(
        auth::session,
        auth::login,
        auth::logout,
        health::healthz,
        health::readyz,
        health::render_metrics,
        openapi_json
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "public", description = "The public API"),
        (name = "operator", description = "Behind the admin token (bearer or session cookie)"),
        (name = "session", description = "Dashboard login"),
        (name = "health", description = "Always open, for load balancers and orchestrators")
    )
)]
struct BinaryDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`SMSGATE_ADMIN_TOKEN`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "set by `POST /api/login`",
            ))),
        );
    }
}

/// The document of the routes a process running `roles` serves.
pub fn document(roles: Roles) -> utoipa::openapi::OpenApi {
    let mut doc = BinaryDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    if roles.ingest {
        doc.merge(ingest::ApiDoc::openapi());
    }
    // Every process that serves the public API also answers message status and receipts.
    if roles.ingest || roles.dispatcher {
        doc.merge(dispatcher::http::ApiDoc::openapi());
    }
    if roles.projector {
        doc.merge(projector::ApiDoc::openapi());
    }
    if roles.archiver {
        doc.merge(ledger::ApiDoc::openapi());
    }
    doc
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operator",
    responses(
        (status = 200, description = "the OpenAPI 3.1 document of this process", content_type = "application/json", body = Object),
        TokenProblems,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn openapi_json(State(json): State<Arc<str>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

/// `GET /api/openapi.json`, rendered once.
pub fn router(roles: Roles) -> Router {
    let json: Arc<str> = document(roles).to_pretty_json().unwrap_or_default().into();
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .with_state(json)
}
