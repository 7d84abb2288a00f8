//! The operator API: `/api/stats`, `/api/events`, `/api/clients/{ip}/{to}` and `/api/live`,
//! each described for OpenAPI by its handler ([`ApiDoc`]). No authentication here: the binary
//! wraps this router in its admin-token layer, so the rule lives in one place for every
//! operator route.

use problem::openapi::{InvalidParameter, TokenProblems, Unavailable};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fred::clients::Pool;
use futures::Stream;
use limiter::{Layout, Policy};
use problem::{ApiError, FieldError};
use tokio::sync::broadcast::error::RecvError;

use crate::json::{ClientJson, DeliveryStatsJson, EventsJson, StatsJson};
use crate::keys::{DAY_SPAN, MINUTE_SPAN, StreamId};
use crate::live::{LiveFeed, LiveMessage};
use crate::read::{self, EventList};

pub const DEFAULT_EVENTS_LIMIT: usize = 50;
pub const MAX_EVENTS_LIMIT: usize = 1_000;
/// Events returned by `/api/stats`'s top lists.
pub const TOP_N: usize = 10;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub redis: Pool,
    pub layout: Layout,
    pub policy: Policy,
    pub live: LiveFeed,
    clock: Clock,
}

impl ApiState {
    pub fn new(redis: Pool, layout: Layout, policy: Policy, live: LiveFeed) -> Self {
        Self {
            redis,
            layout,
            policy,
            live,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Answers as if it were `now`; lets tests compare two reads made at different instants.
    pub fn with_clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    fn now_us(&self) -> i64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/stats", get(stats))
        .route("/api/stats/delivery", get(delivery_stats))
        .route("/api/events", get(events))
        .route("/api/clients/{ip}/{to}", get(client))
        .route("/api/live", get(live))
        .with_state(state)
}

/// The OpenAPI description of the operator routes here, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(stats, delivery_stats, events, client, live),
    components(schemas(
        crate::json::StatsTick,
        limiter::Outcome,
        limiter::delivery::CallbackJson
    ))
)]
pub struct ApiDoc;

/// Which kind of message a live event carries.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum LiveEventName {
    /// `data` is an Event.
    Sms,
    /// `data` is a StatsTick.
    Stats,
}

/// One server-sent event of `/api/live`, as [`live_stream`] writes it.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct LiveEvent {
    event: LiveEventName,
    /// The message as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

fn invalid(field: &'static str, detail: impl ToString) -> ApiError {
    ApiError::invalid(vec![FieldError::new(field, detail)])
}

fn int_param(
    params: &HashMap<String, String>,
    field: &'static str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    let Some(text) = params.get(field) else {
        return Ok(default);
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// Totals, per-minute counts, top offenders and the policy in force.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "operator",
    params(
        ("minutes" = Option<i64>, Query, minimum = 1, maximum = 1440, description = "per-minute buckets to return (default 60)"),
        ("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "adds `per_day` with this many days"),
    ),
    responses(
        (status = 200, body = StatsJson),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn stats(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<StatsJson>, ApiError> {
    let minutes = int_param(&params, "minutes", 60, 1..=MINUTE_SPAN)?;
    let days = match params.contains_key("days") {
        true => Some(int_param(&params, "days", 1, 1..=DAY_SPAN)?),
        false => None,
    };
    let now_us = state.now_us();
    let redis = state.redis.next();
    let layout = &state.layout;
    let (totals, per_minute, top) = futures::try_join!(
        read::totals(redis, layout, now_us),
        read::per_minute(redis, layout, now_us, minutes),
        read::top(redis, layout, now_us, TOP_N),
    )?;
    let per_day = match days {
        Some(days) => Some(read::per_day(redis, layout, now_us, days).await?),
        None => None,
    };
    Ok(Json(StatsJson::new(
        now_us,
        &state.policy,
        &totals,
        per_minute,
        per_day,
        top,
    )))
}

/// Delivery status changes per minute and per status, and the dispatcher's backlog.
#[utoipa::path(
    get,
    path = "/api/stats/delivery",
    tag = "operator",
    params(
        ("minutes" = Option<u64>, Query, minimum = 1, maximum = 1440, description = "minutes of per-minute counts (default 60)"),
    ),
    responses(
        (status = 200, body = DeliveryStatsJson),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn delivery_stats(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryStatsJson>, ApiError> {
    let minutes = int_param(&params, "minutes", 60, 1..=MINUTE_SPAN)?;
    let now_us = state.now_us();
    let per_minute =
        read::delivery_per_minute(state.redis.next(), &state.layout, now_us, minutes).await?;
    let latency =
        read::delivery_latency(state.redis.next(), &state.layout, now_us, minutes).await?;
    let backlog = read::delivery_backlog(state.redis.next(), &state.layout).await?;
    Ok(Json(DeliveryStatsJson::new(
        now_us,
        &per_minute,
        &latency,
        backlog,
    )))
}

/// Recent events (or only violations), newest first, paged with `before`.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "operator",
    params(
        ("outcome" = Option<limiter::Outcome>, Query, description = "only accepted events, or only violations"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "events per page (default 50)"),
        ("before" = Option<String>, Query, pattern = "^([0-9]+-[0-9]+)?$", description = "the `next_before` of the previous page (empty: the first page)"),
    ),
    responses(
        (status = 200, body = EventsJson),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn events(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let list = match params.get("outcome").map(String::as_str) {
        None => EventList::All,
        Some("accepted") => EventList::Accepted,
        Some("rejected") => EventList::Violations,
        Some(_) => return Err(invalid("outcome", "must be `accepted` or `rejected`")),
    };
    let limit = int_param(
        &params,
        "limit",
        DEFAULT_EVENTS_LIMIT as i64,
        1..=MAX_EVENTS_LIMIT as i64,
    )?;
    let before = match params.get("before").filter(|b| !b.is_empty()) {
        Some(text) => Some(
            text.parse::<StreamId>()
                .map_err(|e| invalid("before", e.to_string()))?,
        ),
        None => None,
    };
    let page = read::events(
        state.redis.next(),
        &state.layout,
        list,
        before,
        usize::try_from(limit).unwrap_or(DEFAULT_EVENTS_LIMIT),
    )
    .await?;
    Ok(Json(EventsJson::new(&page)).into_response())
}

/// One client's usage of every window now.
#[utoipa::path(
    get,
    path = "/api/clients/{ip}/{to}",
    tag = "operator",
    params(
        ("ip" = inline(limiter::json::IpAddrSchema), Path, description = "the client's IPv4 or IPv6 address"),
        ("to" = String, Path, pattern = "^\\+[0-9]{2,15}$", description = "the number in E.164"),
    ),
    responses(
        (status = 200, body = ClientJson),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn client(
    State(state): State<ApiState>,
    Path((ip, to)): Path<(String, String)>,
) -> Result<Json<ClientJson>, ApiError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| invalid("ip", "must be an IPv4 or IPv6 address"))?;
    let to = to.trim().to_owned();
    if !to.starts_with('+') || to.len() < 3 || !to[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "to",
            "must be a number in E.164, e.g. +14155550123",
        ));
    }
    let windows = read::client_usage(
        state.redis.next(),
        &state.layout,
        &state.policy,
        &ip,
        &to,
        state.now_us(),
    )
    .await?;
    Ok(Json(ClientJson::new(ip, to, windows)))
}

/// Server-sent events: `sms` (an Event) for every decision, `stats` (a StatsTick) every second.
#[utoipa::path(
    get,
    path = "/api/live",
    tag = "operator",
    responses(
        (status = 200, description = "an event stream of `sms` (Event) and `stats` (StatsTick) events", content_type = "text/event-stream", body = LiveEvent),
        TokenProblems,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn live(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    Sse::new(live_stream(&state.live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Counts a browser in `smsgate_sse_clients` for as long as its stream lives.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::gauge!("smsgate_sse_clients").increment(1.0);
        Self
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("smsgate_sse_clients").decrement(1.0);
    }
}

/// One browser's view of the feed. It ends when the browser lags more than the channel holds:
/// the browser reconnects and refetches, and nobody else waits for it.
pub fn live_stream(feed: &LiveFeed) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    let receiver = feed.subscribe();
    futures::stream::unfold(
        (receiver, Connected::new()),
        |(mut receiver, connected)| async move {
            match receiver.recv().await {
                Ok(LiveMessage::Sms(json)) => Some((
                    Ok(SseEvent::default().event("sms").data(&*json)),
                    (receiver, connected),
                )),
                Ok(LiveMessage::Stats(json)) => Some((
                    Ok(SseEvent::default().event("stats").data(&*json)),
                    (receiver, connected),
                )),
                Ok(LiveMessage::Status(json)) => Some((
                    Ok(SseEvent::default().event("status").data(&*json)),
                    (receiver, connected),
                )),
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "dropping a live client that fell behind");
                    None
                }
                Err(RecvError::Closed) => None,
            }
        },
    )
}
