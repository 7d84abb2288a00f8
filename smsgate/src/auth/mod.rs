//! The operator surface's authentication. When an admin token is in force, operator routes
//! need it, either as `Authorization: Bearer <token>` (scripts, Prometheus) or as the session
//! cookie the dashboard gets from `POST /api/login`.
//!
//! - [`token`]: `AdminToken`, the secret and the rules for what counts as one.
//! - [`sessions`]: server-side sessions in Redis: random ids, expiring, revoked by logout and
//!   by rotating the token.
//! - [`throttle`]: failed logins and wrong bearer tokens per client, answered 429 past a limit.

pub mod sessions;
pub mod throttle;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use ingest::problem::Problem;
use ingest::{ApiError, TrustedProxies};
use problem::openapi::ProblemSchema;
use serde::{Deserialize, Serialize};

pub use sessions::Sessions;
pub use throttle::Throttle;
pub use token::{AdminToken, WeakToken};

pub const SESSION_COOKIE: &str = "smsgate_session";

/// Everything authentication needs, shared by the middleware and the login routes.
#[derive(Clone)]
pub struct Auth {
    pub token: AdminToken,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub proxies: Arc<TrustedProxies>,
}

/// What a request's credentials are worth.
enum Verdict {
    Admit,
    Deny,
    Throttled { retry_after: u64 },
    Unavailable,
}

impl Verdict {
    fn into_response(self) -> Response {
        match self {
            Verdict::Admit | Verdict::Deny => ApiError::Unauthorized.into_response(),
            Verdict::Throttled { retry_after } => too_many_attempts(retry_after),
            Verdict::Unavailable => ApiError::Unavailable { retry_after: 1 }.into_response(),
        }
    }
}

fn too_many_attempts(retry_after: u64) -> Response {
    let detail = format!("too many failed attempts from this client; retry in {retry_after} s");
    let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-attempts", detail)
        .with("retry_after", retry_after)
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

fn peer_of(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

impl Auth {
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.proxies.client_ip(peer, headers)
    }

    /// Whether the request came over HTTPS: an absolute `https` URI, or `X-Forwarded-Proto:
    /// https` set by a proxy we trust (anyone else could claim it).
    fn is_https(&self, peer: IpAddr, headers: &HeaderMap, uri: &Uri) -> bool {
        if uri.scheme_str() == Some("https") {
            return true;
        }
        self.proxies.trusts(peer.to_canonical())
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    async fn blocked(&self, client: IpAddr) -> Option<u64> {
        // Counting needs Redis; without it the operator routes (metrics above all) keep
        // answering to the right token, and the token's length bounds what guessing can do.
        self.throttle.blocked(client).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the failed-attempt count");
            None
        })
    }

    async fn failed(&self, client: IpAddr) {
        if let Err(e) = self.throttle.fail(client).await {
            tracing::warn!(error = %e, "cannot count a failed attempt");
        }
    }

    /// Judges the credentials of a request from `client`; a wrong bearer token counts as a
    /// failure, an unknown session cookie does not (a browser holds on to an expired one).
    async fn verdict(&self, client: IpAddr, headers: &HeaderMap) -> Verdict {
        let presented = bearer(headers);
        let session = session_id(headers);
        if presented.is_none() && session.is_none() {
            return Verdict::Deny;
        }
        if let Some(retry_after) = self.blocked(client).await {
            return Verdict::Throttled { retry_after };
        }
        if let Some(presented) = presented {
            if self.token.matches(presented) {
                return Verdict::Admit;
            }
            self.failed(client).await;
            return Verdict::Deny;
        }
        match self.session_valid(session.as_deref()).await {
            Ok(true) => Verdict::Admit,
            Ok(false) => Verdict::Deny,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a session");
                Verdict::Unavailable
            }
        }
    }

    async fn session_valid(&self, id: Option<&str>) -> Result<bool, fred::error::Error> {
        match id {
            Some(id) => self.sessions.is_valid(&self.token, id).await,
            None => Ok(false),
        }
    }
}

/// Middleware for operator routes: unless no token is in force, the request must carry it.
pub async fn require_admin(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if !auth.token.is_set() {
        return next.run(request).await;
    }
    let client = auth.client(peer_of(&request), request.headers());
    match auth.verdict(client, request.headers()).await {
        Verdict::Admit => next.run(request).await,
        other => other.into_response(),
    }
}

/// `GET /api/session`, `POST /api/login`, `POST /api/logout`.
pub fn router(auth: Auth) -> Router {
    Router::new()
        .route("/api/session", get(session))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .with_state(auth)
}

/// What `GET /api/session` tells the dashboard.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionJson {
    /// The server has an admin token: operator routes need it.
    pub auth_required: bool,
    /// This request carries it (a bearer token or a live session).
    pub authenticated: bool,
}

/// Whether the operator routes need a login, and whether this request has one.
#[utoipa::path(
    get,
    path = "/api/session",
    tag = "session",
    responses((status = 200, body = SessionJson)),
    security((), ("bearer" = []), ("session" = []))
)]
pub async fn session(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let authenticated = if auth.token.is_set() {
        let by_bearer = bearer(&headers).is_some_and(|b| auth.token.matches(b));
        by_bearer
            || auth
                .session_valid(session_id(&headers).as_deref())
                .await
                .unwrap_or(false)
    } else {
        true
    };
    Json(SessionJson {
        auth_required: auth.token.is_set(),
        authenticated,
    })
    .into_response()
}

/// `POST /api/login`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Login {
    /// `SMSGATE_ADMIN_TOKEN`.
    token: String,
}

/// Exchanges the admin token for a session cookie.
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "session",
    request_body = Login,
    responses(
        (status = 204, description = "logged in (or no token is needed); `Set-Cookie: smsgate_session=…` when a token is in force"),
        (status = 400, description = "the body is not `{\"token\": \"…\"}`", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "wrong token", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "body over 64 KiB", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 415, description = "the content type is not JSON", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "too many failed attempts from this client", body = ProblemSchema, content_type = "application/problem+json", headers(("Retry-After" = u64))),
        (status = 503, description = "Redis is unreachable", body = ProblemSchema, content_type = "application/problem+json"),
    ),
    security(())
)]
pub async fn login(
    State(auth): State<Auth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Json<Login>, JsonRejection>,
) -> Response {
    if !auth.token.is_set() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let client = auth.client(peer.ip(), &headers);
    if let Some(retry_after) = auth.blocked(client).await {
        return too_many_attempts(retry_after);
    }
    let presented = match body {
        Ok(Json(body)) => body.token,
        Err(rejection) => return login_rejection(&rejection).into_response(),
    };
    if !auth.token.matches(&presented) {
        auth.failed(client).await;
        return ApiError::Unauthorized.into_response();
    }
    let id = match auth.sessions.create(&auth.token).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "cannot store a session");
            return ApiError::Unavailable { retry_after: 1 }.into_response();
        }
    };
    let max_age = i64::try_from(auth.sessions.ttl().as_secs()).unwrap_or(i64::MAX);
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .secure(auth.is_https(peer.ip(), &headers, &uri))
        .build();
    with_cookie(cookie)
}

/// A login body that is not `{"token": "…"}`, as problem+json naming what is wrong.
fn login_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonDataError(_) => ApiError::bad_field("token", rejection.body_text()),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: crate::app::MAX_BODY_BYTES,
        },
        _ => ApiError::BadRequest {
            detail: rejection.body_text(),
            errors: vec![],
        },
    }
}

/// Ends this session (server-side) and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "session",
    responses(
        (status = 204, description = "logged out"),
        (status = 503, description = "Redis is unreachable", body = ProblemSchema, content_type = "application/problem+json"),
    ),
    security((), ("session" = []))
)]
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers)
        && let Err(e) = auth.sessions.revoke(&auth.token, &id).await
    {
        tracing::warn!(error = %e, "cannot revoke a session");
        return ApiError::Unavailable { retry_after: 1 }.into_response();
    }
    let cookie = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    with_cookie(cookie)
}

fn with_cookie(cookie: Cookie<'_>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.encoded().to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
