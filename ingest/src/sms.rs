//! `POST /api/sms`: validate, identify the client, decide, answer 202 or 429.
//!
//! Checks run from the cheapest to the one that costs quota: content type (415), body size
//! (413), JSON shape (400), number (400), values (422), and only then the limiter.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use limiter::openapi::ProblemSchema;
use limiter::{Decision, LimiterError, Outcome, SmsRequest, WindowState};
use serde::{Deserialize, Serialize};

use crate::IngestState;
use crate::message::Message;
use crate::phone::PhoneNumber;
use crate::problem::{ApiError, FieldError, Problem};
use crate::rate_headers;
use crate::telemetry::{REQUESTS, SCRIPT_DURATION, VIOLATIONS};

/// The largest request body accepted. A maximal message (1,600 characters of 4-byte UTF-8,
/// JSON-escaped) fits with room to spare.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `POST /api/sms`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsRequest)]
struct SmsBody {
    /// The destination, with its country code; any spelling libphonenumber reads.
    #[schema(example = "+14155550123", min_length = 1, max_length = 64)]
    to: String,
    /// 1 to 1,600 characters; no control characters other than newline and tab.
    #[schema(min_length = 1, max_length = 1600)]
    message: String,
    /// An alphanumeric sender ID (1–11 letters, digits, spaces) or a phone number.
    #[serde(default)]
    from: Option<String>,
}

/// The 202 answer: the request may be sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accepted<'a> {
    #[schema(format = "uuid")]
    id: String,
    #[schema(value_type = String, pattern = "^accepted$")]
    status: &'static str,
    /// The destination in E.164.
    to: &'a str,
    segments: u32,
    limits: Vec<Limit<'a>>,
}

/// One window's state after the decision.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = LimitState)]
struct Limit<'a> {
    name: &'a str,
    limit: u32,
    remaining: u32,
    reset_after: u64,
}

/// One window the request is over.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ViolatedWindow)]
struct Violation<'a> {
    name: &'a str,
    limit: u32,
    /// The window's length in seconds.
    window: u64,
    retry_after: u64,
}

/// The 429 answer: a problem with the decision beside the standard members.
#[derive(utoipa::ToSchema)]
#[schema(as = RateLimited)]
#[allow(dead_code)] // describes the `Problem` built in `send_sms`
struct RateLimitedSchema<'a> {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    retry_after: u64,
    #[schema(format = "uuid")]
    id: String,
    limits: Vec<Limit<'a>>,
    violated: Vec<Violation<'a>>,
}

/// Decides whether an SMS may be sent, and records the decision.
#[utoipa::path(
    post,
    path = "/api/sms",
    tag = "public",
    request_body = SmsBody,
    responses(
        (status = 202, description = "accepted: the SMS may be sent", body = Accepted,
         headers(("RateLimit-Policy" = String), ("RateLimit" = String))),
        (status = 400, description = "malformed JSON, wrong types, unknown fields, or an invalid number", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "body over 16 KiB", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 415, description = "the content type is not JSON", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "a value that cannot be sent (empty or over-long message, control characters, bad sender)", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "over a limit", body = RateLimitedSchema, content_type = "application/problem+json",
         headers(("Retry-After" = u64), ("RateLimit-Policy" = String), ("RateLimit" = String))),
        (status = 503, description = "Redis is unreachable; the gateway fails closed", body = ProblemSchema, content_type = "application/problem+json",
         headers(("Retry-After" = u64))),
    ),
)]
pub async fn send_sms(
    State(state): State<IngestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, peer, &headers, body).await {
        Ok(response) => response,
        Err(error) => {
            let outcome = match error {
                ApiError::Unavailable { .. } => "unavailable",
                _ => "invalid",
            };
            metrics::counter!(REQUESTS, "outcome" => outcome).increment(1);
            error.into_response()
        }
    }
}

async fn handle(
    state: &IngestState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| body_error(e, too_large))?;
    let body = parse_body(&bytes)?;

    let to = PhoneNumber::parse(&body.to).map_err(|e| ApiError::bad_field("to", e))?;
    let mut errors = Vec::new();
    let message = Message::parse(body.message)
        .map_err(|e| errors.push(FieldError::new("message", e)))
        .ok();
    let from = body
        .from
        .as_deref()
        .map(parse_sender)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let Some(message) = message.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Unprocessable { errors });
    };

    let ip = state.trusted_proxies.client_ip(peer.ip(), headers);
    let request = SmsRequest {
        ip,
        to: to.as_str(),
        from: from.as_deref(),
        message: message.as_str(),
        segments: message.segments(),
    };
    let started = Instant::now();
    let decision = state
        .limiter
        .decide(state.redis.next_connected(), &request)
        .await;
    metrics::histogram!(SCRIPT_DURATION).record(started.elapsed().as_secs_f64());
    let decision = decision.map_err(|e| match e {
        LimiterError::Disconnected | LimiterError::Redis(_) => {
            ApiError::unavailable(format_args!("redis unavailable, refusing to send: {e}"))
        }
        LimiterError::Reply(_) => ApiError::Internal(e.to_string()),
    })?;
    Ok(respond(&decision, &to, message.segments()))
}

/// Over the limit is a 413; a body cut off or too slow to arrive (the server's body timeout)
/// is the client's fault too, but not its size.
fn body_error(error: axum::Error, too_large: ApiError) -> ApiError {
    let source = error.into_inner();
    if source.is::<http_body_util::LengthLimitError>() {
        too_large
    } else {
        ApiError::BadRequest {
            detail: format!("the request body could not be read: {source}"),
            errors: vec![],
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses the body, naming the offending field in the error where there is one.
fn parse_body(bytes: &[u8]) -> Result<SmsBody, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<SmsBody, _> = serde_path_to_error::deserialize(&mut json);
    let body = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {inner}"),
                errors: vec![],
            };
        }
        let message = inner.to_string();
        // serde names missing and unknown fields in the message, not in the path.
        let field = if path == "." {
            message
                .split('`')
                .nth(1)
                .map(str::to_owned)
                .unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        ApiError::bad_field(&field, message)
    })?;
    json.end().map_err(|e| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {e}"),
        errors: vec![],
    })?;
    Ok(body)
}

/// A sender is an alphanumeric ID (1–11 characters, as carriers allow) or a phone number.
fn parse_sender(from: &str) -> Result<String, FieldError> {
    if let Some(control) = crate::message::find_control(from) {
        return Err(FieldError::new("from", format!("the sender {control}")));
    }
    let from = from.trim();
    if from.starts_with('+') {
        return PhoneNumber::parse(from)
            .map(|n| n.to_string())
            .map_err(|e| FieldError::new("from", e));
    }
    let alphanumeric = from.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
    if !from.is_empty() && from.chars().count() <= 11 && alphanumeric {
        Ok(from.to_owned())
    } else {
        Err(FieldError::new(
            "from",
            "a sender is 1 to 11 letters, digits or spaces, or a phone number",
        ))
    }
}

fn limits(windows: &[WindowState]) -> Vec<Limit<'_>> {
    windows
        .iter()
        .map(|w| Limit {
            name: &w.name,
            limit: w.limit,
            remaining: w.remaining,
            reset_after: w.reset_after,
        })
        .collect()
}

fn respond(decision: &Decision, to: &PhoneNumber, segments: u32) -> Response {
    let mut response = match decision.outcome {
        Outcome::Accepted => {
            metrics::counter!(REQUESTS, "outcome" => "accepted").increment(1);
            let body = Accepted {
                id: decision.id.to_string(),
                status: "accepted",
                to: to.as_str(),
                segments,
                limits: limits(&decision.windows),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Outcome::Rejected => {
            metrics::counter!(REQUESTS, "outcome" => "rejected").increment(1);
            let violated: Vec<_> = decision
                .windows
                .iter()
                .filter(|w| w.violated())
                .map(|w| Violation {
                    name: &w.name,
                    limit: w.limit,
                    window: w.window_secs,
                    retry_after: w.retry_after,
                })
                .collect();
            for v in &violated {
                metrics::counter!(VIOLATIONS, "window" => v.name.to_owned()).increment(1);
            }
            let names: Vec<_> = violated.iter().map(|v| v.name).collect();
            let detail = format!(
                "{to} has used its quota for the {} window; retry in {} s",
                names.join(" and "),
                decision.retry_after
            );
            let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail)
                .with("retry_after", decision.retry_after)
                .with("id", decision.id.to_string())
                .with("limits", limits(&decision.windows))
                .with("violated", violated)
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after));
            response
        }
    };
    rate_headers::insert(response.headers_mut(), &decision.windows);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn body_errors_name_their_field() {
        let field = |body: &str| match parse_body(body.as_bytes()) {
            Err(ApiError::BadRequest { errors, .. }) => errors.first().map(|e| e.field.clone()),
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field(r#"{"message": "hi"}"#).as_deref(), Some("to"));
        assert_eq!(
            field(r#"{"to": 5, "message": "hi"}"#).as_deref(),
            Some("to")
        );
        assert_eq!(
            field(r#"{"to": "+1", "message": "hi", "x": 1}"#).as_deref(),
            Some("x")
        );
        assert_eq!(field(r#"{"to": "+1""#), None);
        assert_eq!(field(r#"{"to": "+1", "message": "a"} trailing"#), None);
    }

    #[test]
    fn senders_are_short_ids_or_numbers() {
        assert_eq!(parse_sender("Acme").unwrap(), "Acme");
        assert_eq!(parse_sender("+1 415 555 0123").unwrap(), "+14155550123");
        assert!(parse_sender("").is_err());
        assert!(parse_sender("TwelveCharsX").is_err());
        assert!(parse_sender("Acme<script>").is_err());
        assert!(parse_sender("Acme\u{b}").is_err());
        assert!(parse_sender("+1 415 555 0123\u{0}").is_err());
    }
}
