//! The delivery routes: `GET /api/sms/{id}` (public: the id is the capability; never the body)
//! and Twilio's receipts at `POST /api/providers/twilio/status`, verified by
//! `X-Twilio-Signature` over smsgate's public URL of the route.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use limiter::delivery::{Change, DeliveryStore, HistoryEntry, Schedule, StatusEvent};
use serde::Serialize;
use uuid::Uuid;

use crate::dispatch::sid_key;
use crate::telemetry::RECEIPTS;
use crate::twilio;

/// The route Twilio posts receipts to.
pub const TWILIO_STATUS_PATH: &str = "/api/providers/twilio/status";

/// How Twilio receipts are checked.
#[derive(Clone, Debug)]
pub struct TwilioReceipts {
    pub auth_token: String,
    /// `SMSGATE_PUBLIC_URL` (scheme, host and any path prefix), when set.
    pub public_url: Option<String>,
}

#[derive(Clone)]
pub struct DeliveryApi {
    pub redis: Pool,
    pub store: DeliveryStore,
    pub twilio: Option<TwilioReceipts>,
}

pub fn router(state: DeliveryApi) -> Router {
    Router::new()
        .route("/api/sms/{id}", get(message))
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .with_state(state)
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %error, "delivery state unavailable");
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
        "the delivery state cannot be read right now",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

#[derive(Serialize)]
struct MessageJson {
    id: String,
    to: String,
    status: limiter::delivery::DeliveryStatus,
    provider: String,
    provider_id: Option<String>,
    attempts: u32,
    history: Vec<HistoryEntry>,
}

async fn message(State(api): State<DeliveryApi>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<Uuid>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "the id is not a UUID",
        );
    };
    match api.store.locate(api.redis.next(), &id).await {
        Ok(Some(state)) => Json(MessageJson {
            id: state.id.to_string(),
            to: state.to,
            status: state.status,
            provider: state.provider,
            provider_id: state.provider_id,
            attempts: state.attempts,
            history: state.history,
        })
        .into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no message with this id is being delivered or was delivered lately",
        ),
        Err(e) => unavailable(e),
    }
}

async fn twilio_status(
    State(api): State<DeliveryApi>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let forbidden = || {
        metrics::counter!(RECEIPTS, "result" => "forged").increment(1);
        problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the X-Twilio-Signature is missing or does not match",
        )
    };
    let Some(receipts) = &api.twilio else {
        return forbidden();
    };
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return forbidden();
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return forbidden();
    };
    let base = match &receipts.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
                return forbidden();
            };
            format!("http://{host}")
        }
    };
    let path_and_query = uri
        .path_and_query()
        .map_or(TWILIO_STATUS_PATH, |p| p.as_str());
    let url = format!("{base}{path_and_query}");
    if !twilio::verify(&receipts.auth_token, &url, &params, signature) {
        return forbidden();
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(sid), Some(message_status)) = (param("MessageSid"), param("MessageStatus")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "MessageSid and MessageStatus are required",
        );
    };
    let Some(status) = twilio::receipt_status(message_status) else {
        metrics::counter!(RECEIPTS, "result" => "ignored").increment(1);
        return StatusCode::NO_CONTENT.into_response();
    };
    let redis = api.redis.next();
    let id = match uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|q| q.into_iter().find(|(k, _)| k == "id"))
        .and_then(|(_, v)| v.parse::<Uuid>().ok())
    {
        Some(id) => Some(id),
        None => match redis
            .get::<Option<String>, _>(sid_key(&api.store, sid))
            .await
        {
            Ok(found) => found.and_then(|v| v.parse().ok()),
            Err(e) => return unavailable(e),
        },
    };
    let state = match id {
        Some(id) => match api.store.locate(redis, &id).await {
            Ok(state) => state,
            Err(e) => return unavailable(e),
        },
        None => None,
    };
    let Some(state) = state else {
        // Unknown here (another deployment's, or long forgotten): Twilio should not retry it.
        metrics::counter!(RECEIPTS, "result" => "unknown").increment(1);
        return StatusCode::NO_CONTENT.into_response();
    };
    let mut event = StatusEvent::new(state.id, &state.to, status, "twilio");
    event.provider_id = Some(sid.to_owned());
    event.attempt = state.attempts;
    event.detail = param("ErrorCode").map(|code| format!("Twilio error {code}"));
    let change = Change {
        event,
        schedule: Schedule::Keep,
    };
    match api.store.change(redis, state.partition, &change).await {
        Ok(recorded) => {
            let result = if recorded { "recorded" } else { "ignored" };
            metrics::counter!(RECEIPTS, "result" => result).increment(1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => unavailable(e),
    }
}
