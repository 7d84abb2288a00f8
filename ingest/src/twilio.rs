//! The Twilio-compatible Messages API, so an application that sends through an official Twilio
//! SDK adopts smsgate by changing its credentials and base URL:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and
//! `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`.
//!
//! A request is the same request as `POST /api/sms`: the same number and body checks, the same
//! limiter deciding every rule in one script (with the API client as one more dimension), the
//! same event on the stream, delivered by the dispatcher. Only the words differ: form-encoded
//! `To`, `From`, `Body`, `StatusCallback` in, Twilio's Message resource out (`sid` = `SM` + the
//! event id's hex), and errors in Twilio's shape (`code`, `message`, `more_info`, `status`)
//! with Twilio's codes, which the SDKs raise as their own exceptions. Twilio's shape rather
//! than problem+json is deliberate on these routes: it is what the SDKs parse.
//!
//! The client IP the rules see is the end user's when the API client names it in
//! `X-Smsgate-End-User-IP`. Without it the event records the API client's own address (its
//! socket peer, or `X-Forwarded-For` from a trusted proxy) marked `ip_unattributed`, and rules
//! keyed on `ip` do not judge the request: the application's server is not one person.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use limiter::delivery::{DeliveryStatus, DeliveryStore, MessageState};
use limiter::{BlockReason, Context, Decision, Destination, Idempotency, LimiterError, Outcome};
use serde::Serialize;

use crate::IngestState;
use crate::api_clients::ApiClient;
use crate::callback::StatusCallback;
use crate::message::{Message, MessageError};
use crate::phone::PhoneNumber;
use crate::sms::{MAX_BODY_BYTES, idempotency_key, parse_sender};
use crate::telemetry::REQUESTS;

/// The header in which an API client names the end user a message is for.
pub const END_USER_IP: HeaderName = HeaderName::from_static("x-smsgate-end-user-ip");

/// Twilio's API version, the first segment of every path here.
pub const API_VERSION: &str = "2010-04-01";

/// Twilio's error codes for the mistakes smsgate can tell apart.
pub mod codes {
    /// Unknown or malformed parameter (smsgate's own: a bad `X-Smsgate-End-User-IP`, a bad
    /// `Idempotency-Key` or one reused with another request).
    pub const INVALID_PARAMETER: u32 = 20001;
    pub const AUTHENTICATE: u32 = 20003;
    pub const NOT_FOUND: u32 = 20404;
    pub const TOO_MANY_REQUESTS: u32 = 20429;
    pub const INTERNAL: u32 = 20500;
    pub const UNAVAILABLE: u32 = 20503;
    pub const INVALID_TO: u32 = 21211;
    pub const INVALID_FROM: u32 = 21212;
    pub const NUMBER_TYPE: u32 = 21407;
    pub const REGION: u32 = 21408;
    pub const BODY_REQUIRED: u32 = 21602;
    pub const TO_REQUIRED: u32 = 21604;
    pub const INVALID_STATUS_CALLBACK: u32 = 21609;
    pub const BODY_TOO_LONG: u32 = 21617;
}

/// An error as Twilio answers it.
#[derive(Debug)]
pub struct TwilioError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl TwilioError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::AUTHENTICATE,
            "Authenticate",
        )
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "The requested resource was not found",
        )
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"smsgate\""),
            );
        }
        response
    }
}

/// Twilio's Message resource, every field the SDKs read.
#[derive(Debug, Serialize)]
pub struct MessageResource {
    pub account_sid: String,
    pub api_version: &'static str,
    pub body: String,
    pub date_created: Option<String>,
    pub date_sent: Option<String>,
    pub date_updated: Option<String>,
    pub direction: &'static str,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub num_media: &'static str,
    pub num_segments: String,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub sid: String,
    pub status: &'static str,
    pub subresource_uris: serde_json::Value,
    pub to: String,
    pub uri: String,
}

impl MessageResource {
    fn new(account_sid: &str, id: &uuid::Uuid, to: &str, status: &'static str) -> Self {
        let sid = limiter::twilio::message_sid(id);
        let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}");
        Self {
            account_sid: account_sid.to_owned(),
            api_version: API_VERSION,
            body: String::new(),
            date_created: None,
            date_sent: None,
            date_updated: None,
            direction: "outbound-api",
            error_code: None,
            error_message: None,
            from: None,
            messaging_service_sid: None,
            num_media: "0",
            num_segments: "0".to_owned(),
            price: None,
            price_unit: None,
            status,
            subresource_uris: serde_json::json!({ "media": format!("{base}/Media.json") }),
            to: to.to_owned(),
            uri: format!("{base}.json"),
            sid,
        }
    }

    /// The resource of a message in delivery, from its state.
    pub fn of_state(account_sid: &str, state: &MessageState) -> Self {
        let mut resource = Self::new(
            account_sid,
            &state.id,
            &state.to,
            limiter::twilio::message_status(state.status),
        );
        let at = |status: Option<DeliveryStatus>| {
            state
                .history
                .iter()
                .rev()
                .find(|h| status.is_none_or(|s| h.status == s))
                .and_then(|h| DateTime::parse_from_rfc3339(&h.at).ok())
                .map(|t| twilio_date(&t.with_timezone(&Utc)))
        };
        resource.body = state.body.clone().unwrap_or_default();
        resource.date_created = rfc2822(state.queued_at_us);
        resource.date_sent = at(Some(DeliveryStatus::Sent)).or_else(|| {
            (state.status == DeliveryStatus::Delivered)
                .then(|| at(Some(DeliveryStatus::Delivered)))
                .flatten()
        });
        resource.date_updated = at(None).or_else(|| resource.date_created.clone());
        let detail = limiter::twilio::last_detail(&state.history);
        resource.error_code = limiter::twilio::error_code(state.status, detail);
        resource.error_message = resource.error_code.and(detail.map(str::to_owned));
        resource.from = state.from.clone();
        resource.num_segments = state.segments.to_string();
        resource
    }
}

/// Twilio's dates: RFC 2822 in GMT with a two-digit day, `Wed, 02 Dec 2026 04:54:35 +0000`.
fn twilio_date(at: &DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn rfc2822(at_us: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_micros(at_us).map(|t| twilio_date(&t))
}

/// The parameters of a create request that smsgate reads; Twilio's others are accepted and
/// ignored.
#[derive(Debug, Default)]
struct CreateParams {
    to: Option<String>,
    from: Option<String>,
    body: Option<String>,
    messaging_service_sid: Option<String>,
    status_callback: Option<String>,
}

impl CreateParams {
    fn parse(bytes: &[u8]) -> Result<Self, TwilioError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|e| {
            TwilioError::bad(
                codes::INVALID_PARAMETER,
                format!("the body is not form-encoded: {e}"),
            )
        })?;
        let mut params = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "To" => &mut params.to,
                "From" => &mut params.from,
                "Body" => &mut params.body,
                "MessagingServiceSid" => &mut params.messaging_service_sid,
                "StatusCallback" => &mut params.status_callback,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        Ok(params)
    }
}

fn authenticate<'a>(
    state: &'a IngestState,
    headers: &HeaderMap,
    account_sid: &str,
) -> Result<&'a ApiClient, TwilioError> {
    let client = state
        .api_clients
        .authenticate(headers)
        .ok_or_else(TwilioError::unauthenticated)?;
    // A client reads and writes only its own account.
    if client.account_sid != account_sid {
        return Err(TwilioError::unauthenticated());
    }
    Ok(client)
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub async fn create_message(
    State(state): State<IngestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(account_sid): Path<String>,
    // The request whole: the `HeaderMap` extractor would clone every header.
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    match create(&state, peer, &account_sid, &parts.headers, body).await {
        Ok(response) => response,
        Err(error) => {
            // A refusal the policy decided was counted with its decision.
            let outcome = match error.code {
                codes::UNAVAILABLE => Some("unavailable"),
                codes::TOO_MANY_REQUESTS | codes::REGION | codes::NUMBER_TYPE => None,
                codes::AUTHENTICATE if error.status == StatusCode::FORBIDDEN => None,
                _ => Some("invalid"),
            };
            if let Some(outcome) = outcome {
                metrics::counter!(REQUESTS, "outcome" => outcome).increment(1);
            }
            error.into_response()
        }
    }
}

async fn create(
    state: &IngestState,
    peer: SocketAddr,
    account_sid: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, TwilioError> {
    let client = authenticate(state, headers, account_sid)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            TwilioError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::BODY_TOO_LONG,
                format!("the request body is over {MAX_BODY_BYTES} bytes or could not be read"),
            )
        })?;
    let params = CreateParams::parse(&bytes)?;

    let to = params
        .to
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| TwilioError::bad(codes::TO_REQUIRED, "A 'To' phone number is required."))?;
    let to = PhoneNumber::parse_with(to, &state.test_numbers).map_err(|e| {
        TwilioError::bad(
            codes::INVALID_TO,
            format!("The 'To' number {to} is not a valid phone number: {e}"),
        )
    })?;
    let from = params
        .from
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(|from| parse_sender(from, &state.test_numbers))
        .transpose()
        .map_err(|e| {
            TwilioError::bad(
                codes::INVALID_FROM,
                format!("The 'From' number is not valid: {}", e.detail),
            )
        })?;
    let message = Message::parse(params.body.unwrap_or_default()).map_err(|e| match e {
        MessageError::Empty => TwilioError::bad(codes::BODY_REQUIRED, "Message body is required."),
        MessageError::TooLong(_) => TwilioError::bad(
            codes::BODY_TOO_LONG,
            format!("The concatenated message body exceeds the 1600 character limit: {e}"),
        ),
        MessageError::Control(_) => {
            TwilioError::bad(codes::BODY_REQUIRED, format!("Message body {e}"))
        }
    })?;
    let status_callback = params
        .status_callback
        .as_deref()
        .filter(|url| !url.is_empty())
        .map(StatusCallback::parse)
        .transpose()
        .map_err(|e| {
            TwilioError::bad(
                codes::INVALID_STATUS_CALLBACK,
                format!("The StatusCallback URL is not valid: {e}"),
            )
        })?;
    let key = idempotency_key(headers).map_err(|_| {
        TwilioError::bad(
            codes::INVALID_PARAMETER,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    })?;
    let (ip, ip_unattributed) = match end_user_ip(headers)? {
        Some(ip) => (ip, false),
        None => (state.trusted_proxies.client_ip(peer.ip(), headers), true),
    };

    let request = limiter::SmsRequest {
        ip,
        to: to.as_str(),
        from: from.as_deref(),
        message: message.as_str(),
        segments: message.segments(),
    };
    // The API client is part of what a repeat must match: two clients' keys never collide.
    let fingerprint = key
        .as_ref()
        .map(|_| crate::sms::fingerprint(Some(&client.account_sid), &request));
    let scoped_key = key.as_ref().map(|k| format!("{}:{k}", client.account_sid));
    let context = Context {
        destination: Destination {
            country: to.country(),
            number_type: Some(to.number_type()),
        },
        idempotency: scoped_key
            .as_deref()
            .zip(fingerprint.as_deref())
            .map(|(key, fingerprint)| Idempotency { key, fingerprint }),
        status_callback: status_callback.as_ref().map(StatusCallback::as_str),
        api_client: Some(&client.account_sid),
        ip_unattributed,
    };
    let decision = crate::sms::decide(state, &request, &context)
        .await
        .map_err(|e| match e {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "not decided; refusing an API client's message");
                TwilioError {
                    retry_after: Some(1),
                    ..TwilioError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        codes::UNAVAILABLE,
                        "Service unavailable, refusing to send; retry shortly",
                    )
                }
            }
            LimiterError::IdempotencyConflict => TwilioError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::INVALID_PARAMETER,
                "This Idempotency-Key was used with a different request",
            ),
            _ => {
                tracing::error!(error = %e, "the decision script answered unexpectedly");
                TwilioError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "Internal server error",
                )
            }
        })?;
    respond(
        client,
        &decision,
        &to,
        from,
        &message,
        params.messaging_service_sid,
    )
}

/// `X-Smsgate-End-User-IP`: one IP address, if given.
fn end_user_ip(headers: &HeaderMap) -> Result<Option<IpAddr>, TwilioError> {
    let mut values = headers.get_all(END_USER_IP).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        TwilioError::bad(
            codes::INVALID_PARAMETER,
            "X-Smsgate-End-User-IP must be one IPv4 or IPv6 address",
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?.trim();
    text.parse::<IpAddr>().map(Some).map_err(|_| bad())
}

fn respond(
    client: &ApiClient,
    decision: &Decision,
    to: &PhoneNumber,
    from: Option<String>,
    message: &Message,
    messaging_service_sid: Option<String>,
) -> Result<Response, TwilioError> {
    match decision.outcome {
        Outcome::Accepted => {
            let mut resource =
                MessageResource::new(&client.account_sid, &decision.id, to.as_str(), "queued");
            resource.body = message.as_str().to_owned();
            resource.date_created = rfc2822(decision.at_us);
            resource.date_updated = resource.date_created.clone();
            resource.from = from;
            resource.messaging_service_sid = messaging_service_sid;
            resource.num_segments = message.segments().to_string();
            Ok((StatusCode::CREATED, Json(resource)).into_response())
        }
        Outcome::Rejected => {
            let names: Vec<&str> = decision
                .windows
                .iter()
                .filter(|w| w.violated())
                .map(|w| &*w.name)
                .collect();
            Err(TwilioError {
                retry_after: Some(decision.retry_after),
                ..TwilioError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::TOO_MANY_REQUESTS,
                    format!(
                        "Too Many Requests: {to} has used its quota for the {} window; retry in {} s",
                        names.join(" and "),
                        decision.retry_after
                    ),
                )
            })
        }
        Outcome::Blocked => Err(match decision.reason {
            Some(BlockReason::Country) => TwilioError::new(
                StatusCode::FORBIDDEN,
                codes::REGION,
                format!(
                    "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}"
                ),
            ),
            Some(BlockReason::NumberType) => TwilioError::new(
                StatusCode::FORBIDDEN,
                codes::NUMBER_TYPE,
                format!(
                    "smsgate does not send to {} numbers: {to}",
                    to.number_type().replace('_', " ")
                ),
            ),
            Some(BlockReason::Client) | None => TwilioError::new(
                StatusCode::FORBIDDEN,
                codes::AUTHENTICATE,
                "Permission denied: this client may not send",
            ),
        }),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`: the message's delivery state.
/// Unknown until the dispatcher has taken the message (a moment after the 201), and for a
/// week after its final status; another client's message is unknown too.
pub async fn fetch_message(
    State(state): State<IngestState>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match fetch(&state, &account_sid, &file, &headers).await {
        Ok(resource) => Json(resource).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn fetch(
    state: &IngestState,
    account_sid: &str,
    file: &str,
    headers: &HeaderMap,
) -> Result<MessageResource, TwilioError> {
    let client = authenticate(state, headers, account_sid)?;
    let id = file
        .strip_suffix(".json")
        .and_then(limiter::twilio::parse_message_sid)
        .ok_or_else(TwilioError::not_found)?;
    let store = DeliveryStore::new(state.policy.load().limiter.layout().clone());
    let found = store.locate(state.redis.next(), &id).await.map_err(|e| {
        tracing::warn!(error = %e, "delivery state unavailable");
        TwilioError {
            retry_after: Some(1),
            ..TwilioError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::UNAVAILABLE,
                "The message cannot be read right now",
            )
        }
    })?;
    match found {
        Some(message) if message.api_client.as_deref() == Some(client.account_sid.as_str()) => {
            Ok(MessageResource::of_state(&client.account_sid, &message))
        }
        _ => Err(TwilioError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822_in_gmt() {
        assert_eq!(
            rfc2822(1_764_651_275_000_000).as_deref(),
            Some("Tue, 02 Dec 2025 04:54:35 +0000")
        );
    }

    #[test]
    fn the_first_of_each_parameter_counts_and_others_are_ignored() {
        let params = CreateParams::parse(
            b"To=%2B14155550123&Body=hi+there&MaxPrice=1&To=%2B1999&StatusCallback=https%3A%2F%2Fa.example%2Fs",
        )
        .unwrap();
        assert_eq!(params.to.as_deref(), Some("+14155550123"));
        assert_eq!(params.body.as_deref(), Some("hi there"));
        assert_eq!(
            params.status_callback.as_deref(),
            Some("https://a.example/s")
        );
        assert_eq!(params.from, None);
    }

    #[test]
    fn errors_have_twilios_shape() {
        let response = TwilioError {
            retry_after: Some(42),
            ..TwilioError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_REQUESTS,
                "slow",
            )
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let unauthenticated = TwilioError::unauthenticated().into_response();
        assert!(
            unauthenticated
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}
