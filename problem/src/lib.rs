//! The one HTTP error of every smsgate surface (ingest, the projector's and the archiver's
//! operator routes, the binary's own), rendered as RFC 9457 problem details
//! (`application/problem+json`). Roles depend on this crate, never on each other.
//!
//! - One `type` scheme: `/problems/<slug>`, one slug per [`ApiError`] variant (and
//!   `rate-limited` for ingest's 429: a type of its own there, serialized in one pass, that
//!   writes the members a [`Problem`] would).
//! - One `Retry-After` policy: every 503 carries [`RETRY_AFTER_UNAVAILABLE`] seconds, as the
//!   header and as `retry_after`; a 429 carries the limiter's exact wait.
//! - 5xx details are logged, never sent.
//! - `From` conversions at the edges: a Redis error is a 503 here; each role converts its own
//!   error types (`impl From<ArchiverError> for ApiError` lives in the archiver), so handlers
//!   use `?`.
//!
//! Adding a problem: a variant, its status in [`ApiError::status`] and its slug in
//! [`ApiError::slug`]; extension members go in `into_response`.

pub mod openapi;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// Seconds a client is told to wait when a dependency of smsgate (Redis, Postgres) is down.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 1;

/// Problem details for one field of the request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl ToString) -> Self {
        Self {
            field: field.into(),
            detail: detail.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not the JSON we expect (syntax, types, missing or unknown fields,
    /// invalid UTF-8) or the number is not a phone number.
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 422: well-formed, but the values cannot be sent (empty or over-long message, …).
    #[error("the request cannot be processed")]
    Unprocessable { errors: Vec<FieldError> },
    #[error("authentication is required")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    /// 503: a dependency (Redis, Postgres) cannot be reached; smsgate fails closed rather
    /// than send unlimited. Build it with [`ApiError::unavailable`] for the one policy.
    #[error("the service is unavailable; try again shortly")]
    Unavailable { retry_after: u64 },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 503 with the one `Retry-After` policy; `cause` is logged, never sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::Unavailable {
            retry_after: RETRY_AFTER_UNAVAILABLE,
        }
    }

    /// A 400 naming every offending field (of a query, a path or a body).
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::BadRequest {
            detail: "the request is invalid; see `errors`".to_owned(),
            errors,
        }
    }

    pub fn bad_field(field: &str, detail: impl ToString) -> Self {
        let error = FieldError::new(field, detail);
        Self::BadRequest {
            detail: format!("`{}`: {}", error.field, error.detail),
            errors: vec![error],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad-request",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::Unprocessable { .. } => "unprocessable",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not-found",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// Redis failing under a handler is an outage of the surface, not a bug: 503.
impl From<fred::error::Error> for ApiError {
    fn from(e: fred::error::Error) -> Self {
        Self::unavailable(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut problem = Problem::new(status, self.slug(), self.to_string());
        match &self {
            Self::BadRequest { errors, .. } | Self::Unprocessable { errors } => {
                problem = problem.with("errors", errors);
            }
            Self::Unavailable { retry_after } => {
                problem = problem.with("retry_after", retry_after);
            }
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            _ => {}
        }
        let mut response = problem.into_response();
        if let Self::Unavailable { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"smsgate\""),
            );
        }
        response
    }
}

/// A problem details document (RFC 9457); extension members go beside the standard ones:
/// `errors` (the fields at fault), `retry_after`, and per route more (see each response).
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    #[serde(flatten)]
    extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: Map::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(name.to_owned(), value);
        }
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn render(error: ApiError) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn every_problem_has_one_type_scheme_and_unavailable_one_retry_policy() {
        let (status, headers, body) = render(ApiError::from(fred::error::Error::new(
            fred::error::ErrorKind::IO,
            "down",
        )))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["type"], "/problems/unavailable");
        assert_eq!(body["retry_after"], RETRY_AFTER_UNAVAILABLE);
        assert!(
            !body["detail"].as_str().unwrap().contains("down"),
            "causes are not sent"
        );

        let (status, _, body) = render(ApiError::invalid(vec![FieldError::new(
            "limit",
            "not a number",
        )]))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "/problems/bad-request");
        assert_eq!(body["errors"][0]["field"], "limit");

        let (_, _, body) = render(ApiError::Internal("secret detail".into())).await;
        assert_eq!(body["type"], "/problems/internal");
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("secret"));
    }
}
