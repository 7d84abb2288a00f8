//! OpenAPI pieces every crate's routes share: the schema of the problem+json that
//! [`crate::ApiError`] renders and the error responses of the operator routes, so the document
//! has one `Problem` whichever routes a process serves.

use serde::Serialize;

/// A problem details document (RFC 9457), as every error of every route is answered.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemSchema {
    /// Names the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's fields at fault, when the problem is the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorSchema>>,
    /// Seconds until a retry can succeed (429, 503), as in the `Retry-After` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One field of a rejected request.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorSchema {
    /// The body member, query or path parameter, or header.
    pub field: String,
    pub detail: String,
}

/// 401 and 429: what every route behind the admin token may answer before its handler runs.
#[derive(utoipa::IntoResponses)]
pub enum TokenProblems {
    /// The admin token is required (a bearer token or the session cookie).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemSchema),
    /// Too many failed attempts from this client; `Retry-After` says when to try again.
    #[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64)))]
    Throttled(ProblemSchema),
}

/// A query or path parameter is invalid; `errors` names it.
#[derive(utoipa::IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct InvalidParameter(pub ProblemSchema);

/// A backend (Redis, or Postgres for the archive's routes) is unreachable.
#[derive(utoipa::IntoResponses)]
#[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64)))]
pub struct Unavailable(pub ProblemSchema);
