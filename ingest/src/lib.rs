//! smsgate's public HTTP API: `POST /api/sms`, and the same requests through Twilio's Messages
//! API for applications that use a Twilio SDK.
//!
//! Ingest validates a request, works out who the client is, asks the limiter for a decision
//! and maps that `Decision` to HTTP: 202 with the remaining quota, or 429 with an exact
//! `Retry-After`, or 403 when the policy blocks the destination or the client. Every error is `application/problem+json`; bad input never reaches Redis and
//! so never counts against a client's quota.
//!
//! # Layout
//! - [`phone`]: `PhoneNumber`, parsed with libphonenumber's rules and normalised to E.164.
//! - [`message`]: `Message`, length rules and the SMS segment count (GSM-7 or UCS-2).
//! - [`callback`]: `StatusCallback`, the shape of a client's `status_callback` URL.
//! - [`client_ip`]: the client's IP: the socket peer, or `X-Forwarded-For` from a trusted proxy.
//! - [`problem`]: the workspace's one HTTP error (crate `problem`), re-exported for the handlers.
//! - [`rate_headers`]: `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers).
//! - [`sms`]: the `POST /api/sms` handler.
//! - [`api_clients`]: API clients (account SID + derived auth token) and their basic auth.
//! - [`twilio`]: the Twilio-compatible `Messages.json` routes, Twilio's resource and errors.
//! - [`telemetry`]: metric names and the HTTP latency middleware.

pub mod api_clients;
pub mod callback;
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
pub mod twilio;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};
use fred::clients::Pool;
use limiter::RateLimiter;

pub use api_clients::ApiClients;
pub use client_ip::TrustedProxies;
pub use phone::TestNumbers;
pub use problem::ApiError;

/// Everything the API needs, ready to use.
#[derive(Clone)]
pub struct IngestState {
    /// The policy in force; SIGHUP swaps in a new one atomically, and a request is decided
    /// and counted wholly under the one it loaded.
    pub policy: Arc<ArcSwap<PolicyInForce>>,
    pub redis: Pool,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub test_numbers: Arc<TestNumbers>,
    /// Whether a `status_callback` may be given: only when callbacks can be signed
    /// (`SMSGATE_CALLBACK_SECRET` is set); otherwise one is a 422.
    pub status_callbacks: bool,
    /// Who may use the Twilio-compatible API; none when empty (every request is a 401).
    pub api_clients: Arc<ApiClients>,
}

/// A policy's limiter with the metric series its decisions move.
pub struct PolicyInForce {
    pub limiter: RateLimiter,
    pub meters: telemetry::DecisionMeters,
}

impl PolicyInForce {
    /// Registers the policy's series (at 0) and puts it in force.
    pub fn new(limiter: RateLimiter) -> Self {
        let meters = telemetry::DecisionMeters::register(limiter.ruleset());
        Self { limiter, meters }
    }
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
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(twilio::create_message),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages/{sid}",
            get(twilio::fetch_message),
        )
        .with_state(state)
}
