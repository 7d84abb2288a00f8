//! smsgate's public HTTP API: `POST /api/sms`.
//!
//! Ingest validates a request, works out who the client is, asks the limiter for a decision
//! and maps that `Decision` to HTTP: 202 with the remaining quota, or 429 with an exact
//! `Retry-After`. Every error is `application/problem+json`; bad input never reaches Redis and
//! so never counts against a client's quota.
//!
//! # Layout
//! - [`phone`]: `PhoneNumber`, parsed with libphonenumber's rules and normalised to E.164.
//! - [`message`]: `Message`, length rules and the SMS segment count (GSM-7 or UCS-2).
//! - [`client_ip`]: the client's IP: the socket peer, or `X-Forwarded-For` from a trusted proxy.
//! - [`problem`]: the workspace's one HTTP error (crate `problem`), re-exported for the handlers.
//! - [`rate_headers`]: `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers).
//! - [`sms`]: the `POST /api/sms` handler.
//! - [`telemetry`]: metric names and the HTTP latency middleware.

pub mod client_ip;
pub mod message;
pub mod phone;
/// The workspace's one HTTP error, re-exported where ingest's handlers (and their users) find it.
pub mod problem {
    pub use ::problem::*;
}
pub mod rate_headers;
pub mod sms;
pub mod telemetry;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use fred::clients::Pool;
use limiter::RateLimiter;

pub use client_ip::TrustedProxies;
pub use problem::ApiError;

/// Everything the API needs, ready to use.
#[derive(Clone)]
pub struct IngestState {
    pub limiter: Arc<RateLimiter>,
    pub redis: Pool,
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// The OpenAPI description of the public API, generated from the handler and its types.
#[derive(utoipa::OpenApi)]
#[openapi(paths(sms::send_sms))]
pub struct ApiDoc;

/// The public API routes. Serve with `into_make_service_with_connect_info::<SocketAddr>()`:
/// the socket peer is the client's identity.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/api/sms", post(sms::send_sms))
        .with_state(state)
}
