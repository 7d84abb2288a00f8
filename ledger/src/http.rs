//! The read side's HTTP routes, for the dashboard's History page (the binary puts them behind
//! the admin token):
//!
//! - `GET /api/history?bucket=hour|day&since=&until=`: accepted and rejected counts per bucket
//!   from the archive and the streams' not-yet-archived tail (see `history`), each event once,
//!   every bucket present, oldest first. Defaults: `until` now, `since` one day
//!   (hour buckets) or thirty days (day buckets) before `until`; an empty range has no buckets,
//!   a range of more than `MAX_BUCKETS` buckets gets its newest `MAX_BUCKETS`.
//! - `GET /api/audit?to=&ip=&since=&until=&limit=`: one number's or one IP's (or, without
//!   either, every) events from the
//!   archive and the stream's tail (the replay reader), the newest `limit` (default 1,000, at
//!   most 10,000) of the range, oldest first. `to` is compared as given (trimmed) against the
//!   recorded E.164; a leading `+` sent unencoded arrives as a space and is restored.
//!
//! Both answer `retained_from` (per kind retention has dropped days of: held from then on)
//! and `not_held` (the kinds the asked range reaches into but the archive no longer holds), so
//! a short answer is never mistaken for a quiet period.
//!
//! Errors are problem+json; a 400 names the offending field.

use problem::openapi::{InvalidParameter, TokenProblems, Unavailable};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use fred::clients::Pool;
use limiter::Layout;
use problem::{ApiError, FieldError};
use sqlx::PgPool;

use crate::history::{self, Bucket};
use crate::json::{EventJson, event_json};
use crate::replay::{Filter, Replay, ReplayOptions};
use archiver::{Kind, NotHeld, RetainedFrom};

/// What the read-side routes read from: the archive and the streams.
#[derive(Clone)]
pub struct LedgerApi {
    pub pg: PgPool,
    pub redis: Pool,
    pub layout: Layout,
}

/// Most buckets one history answer may hold (a year and more of hours).
pub const MAX_BUCKETS: i64 = 10_000;
pub const DEFAULT_AUDIT_LIMIT: usize = 1_000;
pub const MAX_AUDIT_LIMIT: usize = 10_000;

/// Routes served from the Postgres archive merged with the streams' hot tail.
pub fn router(state: LedgerApi) -> Router {
    Router::new()
        .route("/api/history", get(get_history))
        .route("/api/audit", get(get_audit))
        .with_state(state)
}

/// The OpenAPI description of the read-side routes, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_history, get_audit))]
pub struct ApiDoc;

/// `GET /api/audit`: the events, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Audit)]
pub struct AuditJson<'a> {
    pub events: Vec<EventJson<'a>>,
    /// Per kind whose old partitions retention dropped: the archive holds it from then on.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub retained_from: std::collections::BTreeMap<Kind, String>,
    /// The kinds the asked range reaches into that the archive no longer holds.
    pub not_held: Vec<NotHeld>,
}

fn invalid(field: &'static str, detail: impl ToString) -> ApiError {
    ApiError::invalid(vec![FieldError::new(field, detail)])
}

fn time_param(
    params: &HashMap<String, String>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    // Absent is the default; present but empty is a mistake, refused like any bad time.
    let Some(text) = params.get(field).map(|t| t.trim()) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| invalid(field, "must be an RFC 3339 time, e.g. 2026-11-28T07:00:00Z"))
}

fn range(
    params: &HashMap<String, String>,
    default_span: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let until = time_param(params, "until")?.unwrap_or_else(Utc::now);
    let since = time_param(params, "since")?.unwrap_or(until - default_span);
    Ok((since, until))
}

/// Accepted and rejected counts per hour or day from the archive and the streams' not-yet-archived
/// tail (each event once), every bucket present.
#[utoipa::path(
    get,
    path = "/api/history",
    tag = "operator",
    params(
        ("bucket" = Option<history::Bucket>, Query, description = "bucket width (default hour)"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; default one day (hour) or thirty days (day) before `until`"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; default now"),
    ),
    responses(
        (status = 200, body = history::History),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn get_history(
    State(state): State<LedgerApi>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<history::History>, ApiError> {
    let bucket = match params.get("bucket").map(String::as_str) {
        None => Bucket::Hour,
        // Empty is not a bucket: the document's enum says so, and the fuzzer holds us to it.
        Some(text) => {
            Bucket::parse(text).ok_or_else(|| invalid("bucket", "must be `hour` or `day`"))?
        }
    };
    let default_span = match bucket {
        Bucket::Hour => Duration::days(1),
        Bucket::Day => Duration::days(30),
    };
    let (since, until) = range(&params, default_span)?;
    // An empty range has no buckets; a range of more than MAX_BUCKETS gets its newest ones.
    if since >= until {
        return Ok(Json(history::History {
            bucket,
            buckets: Vec::new(),
            retained_from: RetainedFrom::load(&state.pg).await?.to_json(),
            not_held: Vec::new(),
        }));
    }
    let since = since.max(until - Duration::seconds(MAX_BUCKETS * bucket.seconds()));
    Ok(Json(
        history::history(&state.pg, &state.redis, &state.layout, bucket, since, until).await?,
    ))
}

/// One number's or one IP's events from the archive and the stream's tail.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "operator",
    params(
        ("to" = Option<String>, Query, description = "only this number (E.164); without `to` and `ip`, every event of the range"),
        ("ip" = inline(Option<limiter::json::IpAddrSchema>), Query, description = "only this client IP"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "the newest this many of the range (default 1,000)"),
    ),
    responses(
        (status = 200, body = AuditJson),
        InvalidParameter,
        TokenProblems,
        Unavailable,
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn get_audit(
    State(state): State<LedgerApi>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let text = |field: &str| {
        params
            .get(field)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let to = text("to").map(|to| {
        if to.bytes().all(|b| b.is_ascii_digit()) {
            format!("+{to}")
        } else {
            to.to_owned()
        }
    });
    // An empty `ip` (or `limit`) is not an address (a number): refused, not read as absent.
    let present = |field: &str| params.get(field).map(|v| v.trim());
    let ip = match present("ip") {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| invalid("ip", "must be an IPv4 or IPv6 address"))?,
        ),
        None => None,
    };
    if to.is_none() && ip.is_none() {
        let either = "give `to` (an E.164 number) or `ip`";
        return Err(ApiError::invalid(vec![
            FieldError::new("to", either),
            FieldError::new("ip", either),
        ]));
    }
    let limit = match present("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_AUDIT_LIMIT).contains(l))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_AUDIT_LIMIT}"),
                )
            })?,
        None => DEFAULT_AUDIT_LIMIT,
    };
    let since = time_param(&params, "since")?;
    let until = time_param(&params, "until")?;
    let retained = RetainedFrom::load(&state.pg).await?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Ok(Json(AuditJson {
            events: Vec::new(),
            retained_from: retained.to_json(),
            not_held: Vec::new(),
        })
        .into_response());
    }
    let gaps = retained.gaps(
        &[Kind::Accepted, Kind::Rejected, Kind::Blocked],
        since.map(|t| t.timestamp_micros()),
    );
    let filter = Filter {
        since_us: since.map(|t| t.timestamp_micros()),
        until_us: until.map(|t| t.timestamp_micros()),
        to,
        ip,
        outcome: None,
    };
    let mut replay = Replay::new(
        state.redis.clone(),
        state.pg.clone(),
        &state.layout,
        ReplayOptions {
            filter,
            follow: false,
        },
    );
    // The newest `limit` of the range: a client's full history streams through a bounded window.
    let mut newest = VecDeque::with_capacity(limit.min(1_024));
    while let Some(item) = replay.next().await? {
        if newest.len() == limit {
            newest.pop_front();
        }
        newest.push_back(item);
    }
    let events = newest.iter().map(event_json).collect();
    Ok(Json(AuditJson {
        events,
        retained_from: retained.to_json(),
        not_held: RetainedFrom::not_held(&gaps),
    })
    .into_response())
}
