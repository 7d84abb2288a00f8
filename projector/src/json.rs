//! The JSON shapes of `docs/operator-api.md`, rendered from the read model. Kept apart from
//! the queries so the wire format can be checked against the document in one place.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use limiter::Policy;
use serde::Serialize;

use crate::read::{Counts, EventPage, Top, Totals, WindowUsage};

pub use limiter::json::{EventJson, rfc3339_micros};

/// RFC 3339 UTC in whole seconds, e.g. `2026-11-28T07:00:00Z`.
pub fn rfc3339_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Counts)]
pub struct CountsJson {
    pub accepted: u64,
    pub rejected: u64,
}

impl From<Counts> for CountsJson {
    fn from(c: Counts) -> Self {
        Self {
            accepted: c.accepted,
            rejected: c.rejected,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Totals)]
pub struct TotalsJson {
    pub last_minute: CountsJson,
    pub last_hour: CountsJson,
    pub today: CountsJson,
}

impl From<&Totals> for TotalsJson {
    fn from(t: &Totals) -> Self {
        Self {
            last_minute: t.last_minute.into(),
            last_hour: t.last_hour.into(),
            today: t.today.into(),
        }
    }
}

/// The `stats` event of `/api/live`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsTick {
    pub now: String,
    pub totals: TotalsJson,
}

impl StatsTick {
    pub fn new(now_us: i64, totals: &Totals) -> Self {
        Self {
            now: rfc3339_micros(now_us),
            totals: totals.into(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PolicyWindow)]
pub struct PolicyWindowJson {
    pub name: String,
    pub limit: u32,
    pub window_seconds: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MinuteBucket)]
pub struct MinuteJson {
    pub minute: String,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DayBucket)]
pub struct DayJson {
    pub day: String,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TopClient)]
pub struct TopClientJson {
    #[schema(value_type = limiter::json::IpAddrSchema)]
    pub ip: IpAddr,
    pub to: String,
    pub rejections: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TopNumber)]
pub struct TopNumberJson {
    pub to: String,
    pub rejections: u64,
}

/// `GET /api/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Stats)]
pub struct StatsJson {
    pub now: String,
    pub policy: Vec<PolicyWindowJson>,
    pub totals: TotalsJson,
    pub per_minute: Vec<MinuteJson>,
    /// Only with `?days=N`: an extension of the documented shape, absent by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_day: Option<Vec<DayJson>>,
    pub top_clients: Vec<TopClientJson>,
    pub top_numbers: Vec<TopNumberJson>,
}

impl StatsJson {
    pub fn new(
        now_us: i64,
        policy: &Policy,
        totals: &Totals,
        per_minute: Vec<(i64, Counts)>,
        per_day: Option<Vec<(i64, Counts)>>,
        top: Top,
    ) -> Self {
        Self {
            now: rfc3339_micros(now_us),
            policy: policy
                .windows()
                .iter()
                .map(|w| PolicyWindowJson {
                    name: w.name.clone(),
                    limit: w.limit,
                    window_seconds: w.duration.as_secs(),
                })
                .collect(),
            totals: totals.into(),
            per_minute: per_minute
                .into_iter()
                .map(|(m, c)| MinuteJson {
                    minute: rfc3339_secs(m * 60),
                    accepted: c.accepted,
                    rejected: c.rejected,
                })
                .collect(),
            per_day: per_day.map(|days| {
                days.into_iter()
                    .map(|(d, c)| DayJson {
                        day: rfc3339_secs(d * 86_400),
                        accepted: c.accepted,
                        rejected: c.rejected,
                    })
                    .collect()
            }),
            top_clients: top
                .clients
                .into_iter()
                .map(|(ip, to, rejections)| TopClientJson { ip, to, rejections })
                .collect(),
            top_numbers: top
                .numbers
                .into_iter()
                .map(|(to, rejections)| TopNumberJson { to, rejections })
                .collect(),
        }
    }
}

/// `GET /api/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EventPage)]
pub struct EventsJson<'a> {
    pub events: Vec<EventJson<'a>>,
    pub next_before: Option<String>,
}

impl<'a> EventsJson<'a> {
    pub fn new(page: &'a EventPage) -> Self {
        Self {
            events: page
                .events
                .iter()
                .map(|(id, e)| EventJson::new(*id, e))
                .collect(),
            next_before: page.next_before.map(|id| id.to_string()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ClientWindow)]
pub struct WindowUsageJson {
    pub name: String,
    pub limit: u32,
    pub used: u32,
    pub remaining: u32,
    pub frees_in: u64,
}

/// `GET /api/clients/{ip}/{to}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ClientUsage)]
pub struct ClientJson {
    #[schema(value_type = limiter::json::IpAddrSchema)]
    pub ip: IpAddr,
    pub to: String,
    pub windows: Vec<WindowUsageJson>,
}

impl ClientJson {
    pub fn new(ip: IpAddr, to: String, windows: Vec<WindowUsage>) -> Self {
        Self {
            ip,
            to,
            windows: windows
                .into_iter()
                .map(|w| WindowUsageJson {
                    name: w.name,
                    limit: w.limit,
                    used: w.used,
                    remaining: w.remaining,
                    frees_in: w.frees_in,
                })
                .collect(),
        }
    }
}
