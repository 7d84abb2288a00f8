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
use problem::openapi::{InvalidParameter, ProblemSchema, Unavailable};
use problem::{ApiError, FieldError, Problem};
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

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(message, twilio_status))]
pub struct ApiDoc;

pub fn router(state: DeliveryApi) -> Router {
    Router::new()
        .route("/api/sms/{id}", get(message))
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .with_state(state)
}

/// A receipt that is not Twilio's: no signature, or one that does not match.
fn forged() -> Response {
    metrics::counter!(RECEIPTS, "result" => "forged").increment(1);
    Problem::new(
        StatusCode::FORBIDDEN,
        "forged-receipt",
        "the X-Twilio-Signature is missing or does not match",
    )
    .into_response()
}

/// A message's delivery: where it is, and every status change so far. Never the body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Message)]
struct MessageJson {
    #[schema(format = "uuid")]
    id: String,
    to: String,
    status: limiter::delivery::DeliveryStatus,
    provider: String,
    provider_id: Option<String>,
    attempts: u32,
    history: Vec<HistoryEntry>,
}

/// The delivery of one message, by the id `POST /api/sms` answered (the id is the capability).
#[utoipa::path(
    get,
    path = "/api/sms/{id}",
    tag = "public",
    params(("id" = String, Path, format = "uuid", description = "the `id` of the 202 answer")),
    responses(
        (status = 200, body = MessageJson),
        InvalidParameter,
        (status = 404, description = "no message with this id is being delivered or was delivered lately", body = ProblemSchema, content_type = "application/problem+json"),
        Unavailable,
    ),
    security(())
)]
async fn message(State(api): State<DeliveryApi>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<Uuid>() else {
        return ApiError::bad_field("id", "not a UUID").into_response();
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
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

/// Twilio's status callbacks (receipts), form-encoded as Twilio sends them.
#[utoipa::path(
    post,
    path = "/api/providers/twilio/status",
    tag = "public",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "Twilio's callback parameters (MessageSid, MessageStatus, ErrorCode, …)"),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature over smsgate's public URL of this route and the parameters")),
    responses(
        (status = 204, description = "recorded, or ignored (an unknown message or a status that changes nothing)"),
        (status = 400, description = "MessageSid or MessageStatus is missing", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "unsigned or wrongly signed", body = ProblemSchema, content_type = "application/problem+json"),
        Unavailable,
    ),
    security(())
)]
async fn twilio_status(
    State(api): State<DeliveryApi>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(receipts) = &api.twilio else {
        return forged();
    };
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return forged();
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return forged();
    };
    let base = match &receipts.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
                return forged();
            };
            format!("http://{host}")
        }
    };
    let path_and_query = uri
        .path_and_query()
        .map_or(TWILIO_STATUS_PATH, |p| p.as_str());
    let url = format!("{base}{path_and_query}");
    if !twilio::verify(&receipts.auth_token, &url, &params, signature) {
        return forged();
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(sid), Some(message_status)) = (param("MessageSid"), param("MessageStatus")) else {
        return ApiError::invalid(
            ["MessageSid", "MessageStatus"]
                .into_iter()
                .filter(|name| param(name).is_none())
                .map(|name| FieldError::new(name, "required"))
                .collect(),
        )
        .into_response();
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
            Err(e) => return ApiError::unavailable(e).into_response(),
        },
    };
    let state = match id {
        Some(id) => match api.store.locate(redis, &id).await {
            Ok(state) => state,
            Err(e) => return ApiError::unavailable(e).into_response(),
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
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}
