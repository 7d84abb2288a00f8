//! The last word on every response: errors are problem+json, and every response carries the
//! security headers the dashboard needs.
//!
//! Handlers render their own problems; this catches the errors nobody rendered: axum's
//! rejections (a query or path that does not parse, a JSON body of the wrong shape), 405 for a
//! method a route does not take, the timeout layer's 503, the dashboard's file server. Their
//! plain-text reason becomes the problem's `detail`. The Twilio-compatible API
//! (`/2010-04-01/…`) is the one exception: its errors are Twilio's JSON shape, which the
//! Twilio SDKs parse, and are left as they are.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ingest::problem::Problem;

/// The longest plain-text reason carried over into a problem's `detail`.
const MAX_DETAIL_BYTES: usize = 1024;

/// The dashboard is one origin: its scripts, styles and API calls come from here, nothing is
/// inlined, and no other site may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Middleware, outermost: problem+json for every error, the security headers on every response.
pub async fn finish(request: Request, next: Next) -> Response {
    let twilio_api = request.uri().path().starts_with("/2010-04-01/");
    let response = next.run(request).await;
    let mut response = if twilio_api && is_json(&response) {
        response
    } else {
        ensure_problem_json(response).await
    };
    for (name, value) in security_headers() {
        response.headers_mut().entry(name).or_insert(value);
    }
    response
}

/// The headers every response carries (unless a handler set its own).
fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // For browsers older than `frame-ancestors`.
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

fn is_problem(response: &Response) -> bool {
    has_content_type(response, "application/problem+json")
}

fn has_content_type(response: &Response, essence: &str) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(essence))
}

fn is_json(response: &Response) -> bool {
    has_content_type(response, "application/json")
}

/// Turns an error response that is not problem+json into one, keeping its status and headers
/// (`Allow`, `Retry-After`, …).
async fn ensure_problem_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let (mut parts, body) = response.into_parts();
    let detail = if plain_text && !status.is_server_error() {
        match axum::body::to_bytes(body, MAX_DETAIL_BYTES).await {
            Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
            _ => default_detail(status),
        }
    } else {
        default_detail(status)
    };
    let problem = Problem::new(status, &slug(status), detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, Body::new(problem_body))
}

fn default_detail(status: StatusCode) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method".to_owned(),
        StatusCode::SERVICE_UNAVAILABLE => "the server could not answer in time".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    }
}

/// `Method Not Allowed` → `method-not-allowed`.
fn slug(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_come_from_the_reason_phrase() {
        assert_eq!(slug(StatusCode::METHOD_NOT_ALLOWED), "method-not-allowed");
        assert_eq!(slug(StatusCode::PAYLOAD_TOO_LARGE), "payload-too-large");
    }
}
