//! `POST /api/sms`: validate, identify the client, decide, answer 202, 429 or 403.
//!
//! Checks run from the cheapest to the one that costs quota: content type (415), body size
//! (413), JSON shape (400), number (400), values (422), `Idempotency-Key` (400), and only then
//! the limiter, which blocks (403), refuses (429) or accepts (202) in one atomic step. A repeat
//! under a known `Idempotency-Key` gets the first answer again (`Idempotent-Replayed: true`).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use limiter::{
    Context, Decision, Destination, Idempotency, LimiterError, Outcome, SmsRequest, WindowState,
};
use problem::openapi::ProblemSchema;
use serde::{Deserialize, Serialize};

use crate::IngestState;
use crate::callback::StatusCallback;
use crate::message::Message;
use crate::phone::{PhoneNumber, TestNumbers};
use crate::problem::{ApiError, FieldError, Problem};
use crate::rate_headers;
use crate::telemetry::REQUESTS;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Marks a response that repeats the first answer to an `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest `Idempotency-Key` accepted: it becomes part of a Redis key, so it is bounded.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

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
    #[serde(default)]
    status_callback: Option<String>,
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
    rule: &'a str,
    limit: u32,
    /// The window's length in seconds.
    window: u64,
    retry_after: u64,
}

/// The 429 answer: a problem (RFC 9457, the members [`Problem`] writes) with the decision
/// beside the standard members. Its own type, serialized in one pass: a [`Problem`] builds a
/// JSON tree of its extensions first, which cost a rejection more than its decision did.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RateLimited)]
struct RateLimited<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    retry_after: u64,
    #[schema(format = "uuid")]
    id: String,
    limits: Vec<Limit<'a>>,
    violated: Vec<Violation<'a>>,
}

impl RateLimited<'_> {
    const TYPE: &'static str = "/problems/rate-limited";

    fn into_response(self) -> Response {
        let body = json_body(&self);
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                ),
                (header::RETRY_AFTER, HeaderValue::from(self.retry_after)),
            ],
            body,
        )
            .into_response()
    }
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
        (status = 429, description = "over a limit", body = RateLimited, content_type = "application/problem+json",
         headers(("Retry-After" = u64), ("RateLimit-Policy" = String), ("RateLimit" = String))),
        (status = 503, description = "Redis is unreachable; the gateway fails closed", body = ProblemSchema, content_type = "application/problem+json",
         headers(("Retry-After" = u64))),
    ),
)]
pub async fn send_sms(
    State(state): State<IngestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    // The request whole: the `HeaderMap` extractor would clone every header.
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    match handle(&state, peer, &parts.headers, body).await {
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

    let to = PhoneNumber::parse_with(&body.to, &state.test_numbers)
        .map_err(|e| ApiError::bad_field("to", e))?;
    let mut errors = Vec::new();
    let message = Message::parse(body.message)
        .map_err(|e| errors.push(FieldError::new("message", e)))
        .ok();
    let from = body
        .from
        .as_deref()
        .map(|from| parse_sender(from, &state.test_numbers))
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let status_callback = body
        .status_callback
        .as_deref()
        .map(|url| match state.status_callbacks {
            true => StatusCallback::parse(url),
            false => Err("status callbacks are not enabled here (no SMSGATE_CALLBACK_SECRET)"),
        })
        .transpose()
        .map_err(|e| errors.push(FieldError::new("status_callback", e)))
        .ok()
        .flatten();
    let Some(message) = message.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Unprocessable { errors });
    };

    let key = idempotency_key(headers)?;
    let ip = state.trusted_proxies.client_ip(peer.ip(), headers);
    let request = SmsRequest {
        ip,
        to: to.as_str(),
        from: from.as_deref(),
        message: message.as_str(),
        segments: message.segments(),
    };
    let fingerprint = key.as_ref().map(|_| fingerprint(None, &request));
    let context = Context {
        destination: Destination {
            country: to.country(),
            number_type: Some(to.number_type()),
        },
        idempotency: key
            .as_deref()
            .zip(fingerprint.as_deref())
            .map(|(key, fingerprint)| Idempotency { key, fingerprint }),
        status_callback: status_callback.as_ref().map(StatusCallback::as_str),
        ..Context::default()
    };
    let decision = decide(state, &request, &context)
        .await
        .map_err(|e| match e {
            e if e.is_unavailable() => {
                ApiError::unavailable(format_args!("not decided, refusing to send: {e}"))
            }
            LimiterError::IdempotencyConflict => ApiError::Unprocessable {
                errors: vec![FieldError::new("Idempotency-Key", e)],
            },
            _ => ApiError::Internal(e.to_string()),
        })?;
    Ok(respond(&decision, &to, message.segments()))
}

/// What a repeat under an `Idempotency-Key` must match: the normalised fields (another spelling
/// of the same number is the same request), after `scope` when keys belong to one API client.
pub(crate) fn fingerprint(scope: Option<&str>, request: &SmsRequest<'_>) -> String {
    let scope = scope.map(|s| format!("{s}\u{0}")).unwrap_or_default();
    fred::util::sha1_hash(&format!(
        "{scope}{}\u{0}{}\u{0}{}",
        request.to,
        request.from.unwrap_or(""),
        request.message
    ))
}

/// Decides `request` under the policy in force (a SIGHUP swaps it atomically), timing the
/// script and counting the decision.
pub(crate) async fn decide(
    state: &IngestState,
    request: &SmsRequest<'_>,
    context: &Context<'_>,
) -> Result<Decision, LimiterError> {
    let policy = state.policy.load();
    let started = Instant::now();
    let decision = policy
        .limiter
        .decide_with(state.redis.next_connected(), request, context)
        .await;
    policy.meters.record_script(started.elapsed());
    if let Ok(decision) = &decision {
        policy.meters.count(decision);
    }
    decision
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
    // Most bodies are fine: read them plainly, and again with the path tracked only to say
    // where one is wrong (the tracking costs a valid body more than its parsing).
    if let Ok(body) = serde_json::from_slice(bytes) {
        return Ok(body);
    }
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

/// The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header: a structured-field
/// string, `"…"`; a bare token is taken as well), 1 to 255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_field(
            "Idempotency-Key",
            format!(
                "must be one quoted string of 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ),
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let visible = key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// A sender is an alphanumeric ID (1–11 characters, as carriers allow) or a phone number.
pub(crate) fn parse_sender(from: &str, test_numbers: &TestNumbers) -> Result<String, FieldError> {
    if let Some(control) = crate::message::find_control(from) {
        return Err(FieldError::new("from", format!("the sender {control}")));
    }
    let from = from.trim();
    if from.starts_with('+') {
        return PhoneNumber::parse_with(from, test_numbers)
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

/// A decision's answer as JSON, written into a buffer that fits it at once (serde_json's own
/// starts at 128 bytes and grows three times for a policy of several rules).
fn json_body(value: &impl Serialize) -> Vec<u8> {
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => body,
        Err(_) => Vec::new(),
    }
}

/// An event id as the answer carries it, written straight into a string of its length.
fn id_text(id: &uuid::Uuid) -> String {
    id.as_hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// The windows a client is held to: shadow rules are the operator's trial, not the client's.
fn limits(windows: &[WindowState]) -> Vec<Limit<'_>> {
    windows
        .iter()
        .filter(|w| w.enforced)
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
        Outcome::Blocked => {
            let reason = decision.reason.map_or("policy", |r| r.as_str());
            let detail = match decision.reason {
                Some(limiter::BlockReason::Country) => {
                    format!("{to}: smsgate does not send to this country")
                }
                Some(limiter::BlockReason::NumberType) => format!(
                    "{to}: smsgate does not send to {} numbers",
                    to.number_type().replace('_', " ")
                ),
                _ => "this client may not send".to_owned(),
            };
            Problem::new(StatusCode::FORBIDDEN, &format!("blocked-{reason}"), detail)
                .with("id", decision.id.to_string())
                .with("reason", reason)
                .with("country", to.country())
                .with("number_type", to.number_type())
                .into_response()
        }
        Outcome::Accepted => {
            let body = Accepted {
                id: id_text(&decision.id),
                status: "accepted",
                to: to.as_str(),
                segments,
                limits: limits(&decision.windows),
            };
            let json = [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )];
            (StatusCode::ACCEPTED, json, json_body(&body)).into_response()
        }
        Outcome::Rejected => {
            let violated: Vec<_> = decision
                .windows
                .iter()
                .filter(|w| w.violated())
                .map(|w| Violation {
                    name: &w.name,
                    rule: &w.rule,
                    limit: w.limit,
                    window: w.window_secs,
                    retry_after: w.retry_after,
                })
                .collect();
            let names: Vec<_> = violated.iter().map(|v| v.name).collect();
            let detail = format!(
                "{to} has used its quota for the {} window; retry in {} s",
                names.join(" and "),
                decision.retry_after
            );
            RateLimited {
                kind: RateLimited::TYPE,
                title: "Too Many Requests",
                status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
                detail,
                retry_after: decision.retry_after,
                id: id_text(&decision.id),
                limits: limits(&decision.windows),
                violated,
            }
            .into_response()
        }
    };
    rate_headers::insert(
        response.headers_mut(),
        decision.windows.iter().filter(|w| w.enforced),
    );
    if decision.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limited_answer_is_the_problem_it_stands_for() {
        let limits = vec![Limit {
            name: "1m",
            limit: 3,
            remaining: 0,
            reset_after: 41,
        }];
        let violated = vec![Violation {
            name: "1m",
            rule: "client",
            limit: 3,
            window: 60,
            retry_after: 41,
        }];
        let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "over")
            .with("retry_after", 41)
            .with("id", "0193")
            .with("limits", &limits)
            .with("violated", &violated);
        let typed = RateLimited {
            kind: RateLimited::TYPE,
            title: "Too Many Requests",
            status: 429,
            detail: "over".into(),
            retry_after: 41,
            id: "0193".into(),
            limits,
            violated,
        };
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            serde_json::to_value(&problem).unwrap()
        );
    }

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
        let test = TestNumbers::parse("+447700900").unwrap();
        let parse = |from: &str| parse_sender(from, &test);
        assert_eq!(parse("Acme").unwrap(), "Acme");
        assert_eq!(parse("+1 415 555 0123").unwrap(), "+14155550123");
        assert_eq!(parse("+44 7700 900123").unwrap(), "+447700900123");
        assert!(parse_sender("+44 7700 900123", &TestNumbers::default()).is_err());
        assert!(parse("").is_err());
        assert!(parse("TwelveCharsX").is_err());
        assert!(parse("Acme<script>").is_err());
        assert!(parse("Acme\u{b}").is_err());
        assert!(parse("+1 415 555 0123\u{0}").is_err());
    }

    #[test]
    fn idempotency_keys_are_short_quoted_strings() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
            idempotency_key(&h)
        };
        assert_eq!(
            with("\"8e03978e-40d5\"").unwrap().as_deref(),
            Some("8e03978e-40d5")
        );
        assert_eq!(with("order-1").unwrap().as_deref(), Some("order-1"));
        assert!(with("\"\"").is_err());
        assert!(with("a b").is_err());
        assert!(with(&"k".repeat(256)).is_err());
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }
}
