//! The admin token. When `SMSGATE_ADMIN_TOKEN` is set, operator routes need it, either as
//! `Authorization: Bearer <token>` (scripts, Prometheus) or as the session cookie the dashboard
//! gets from `POST /api/login`. The cookie holds a digest of the token, never the token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingest::ApiError;
use serde::Deserialize;
use serde_json::json;

pub const SESSION_COOKIE: &str = "smsgate_session";

#[derive(Clone, Default)]
pub struct AdminToken(Option<Arc<str>>);

impl AdminToken {
    pub fn new(token: Option<String>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(Arc::from))
    }

    pub fn required(&self) -> bool {
        self.0.is_some()
    }

    fn session_value(token: &str) -> String {
        fred::util::sha1_hash(&format!("smsgate-session:{token}"))
    }

    /// True when no token is configured or the request carries it.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.0 else { return true };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), token.as_bytes())) {
            return true;
        }
        let expected = Self::session_value(token);
        cookies(headers).any(|(name, value)| {
            name == SESSION_COOKIE && constant_time_eq(value.as_bytes(), expected.as_bytes())
        })
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware for operator routes: 401 problem+json unless the token is presented.
pub async fn require_admin(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    if token.admits(request.headers()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// `GET /api/session`, `POST /api/login`, `POST /api/logout`.
pub fn router(token: AdminToken) -> Router {
    Router::new()
        .route("/api/session", get(session))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .with_state(token)
}

async fn session(State(token): State<AdminToken>, headers: HeaderMap) -> Response {
    Json(json!({
        "auth_required": token.required(),
        "authenticated": token.admits(&headers),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(token): State<AdminToken>, body: Option<Json<Login>>) -> Response {
    let Some(expected) = &token.0 else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let presented = body.map(|Json(b)| b.token).unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return ApiError::Unauthorized.into_response();
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        AdminToken::session_value(expected)
    );
    set_cookie(cookie)
}

async fn logout() -> Response {
    set_cookie(format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
}

fn set_cookie(cookie: String) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_or_session_cookie_admit_and_nothing_else_does() {
        let token = AdminToken::new(Some("s3cret".into()));
        assert!(token.admits(&with("authorization", "Bearer s3cret")));
        assert!(!token.admits(&with("authorization", "Bearer s3cre")));
        assert!(!token.admits(&with("authorization", "s3cret")));
        let cookie = format!(
            "a=b; {SESSION_COOKIE}={}",
            AdminToken::session_value("s3cret")
        );
        assert!(token.admits(&with("cookie", &cookie)));
        assert!(!token.admits(&with("cookie", &format!("{SESSION_COOKIE}=s3cret"))));
        assert!(!token.admits(&HeaderMap::new()));
        assert!(AdminToken::new(None).admits(&HeaderMap::new()));
        assert!(!AdminToken::new(Some(String::new())).required());
    }
}
