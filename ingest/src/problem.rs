//! One error type for the whole HTTP surface, rendered as RFC 9457 problem details
//! (`application/problem+json`). 5xx details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

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
    /// 503: Redis cannot be reached; smsgate fails closed rather than send unlimited.
    #[error("the rate limiter is unavailable; try again shortly")]
    Unavailable { retry_after: u64 },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
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

    fn slug(&self) -> &'static str {
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
