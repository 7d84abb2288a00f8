//! The JSON shapes of `docs/operator-api.md`, rendered from the read model. Kept apart from
//! the queries so the wire format can be checked against the document in one place.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use limiter::Policy;
use serde::Serialize;

use crate::read::{Counts, DeliveryBacklog, EventPage, Top, Totals, WindowUsage};

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

/// Status changes of one kind each, per delivery status.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[schema(as = DeliveryCounts)]
pub struct DeliveryCountsJson {
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub delivered: u64,
    pub undelivered: u64,
    pub failed: u64,
    pub expired: u64,
}

impl DeliveryCountsJson {
    /// From counts in the order of [`limiter::delivery::DeliveryStatus::ALL`].
    fn from_counts(counts: &[u64; 7]) -> Self {
        let [
            queued,
            sending,
            sent,
            delivered,
            undelivered,
            failed,
            expired,
        ] = *counts;
        Self {
            queued,
            sending,
            sent,
            delivered,
            undelivered,
            failed,
            expired,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeliveryMinute)]
pub struct DeliveryMinuteJson {
    /// Start of the minute.
    pub minute: String,
    #[serde(flatten)]
    pub counts: DeliveryCountsJson,
}

/// `GET /api/stats/delivery`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeliveryStats)]
pub struct DeliveryStatsJson {
    pub now: String,
    /// Over the minutes asked for.
    pub totals: DeliveryCountsJson,
    /// Oldest first, one entry per minute, zeros included.
    pub per_minute: Vec<DeliveryMinuteJson>,
    /// Provider call latency over those minutes.
    pub latency: LatencyJson,
    pub backlog: DeliveryBacklog,
}

/// Percentiles of the provider call latency in seconds, as the upper bound of the histogram
/// bucket they fall in (10 s means 10 s or more); null without a call in the span.
#[derive(Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ProviderLatency)]
pub struct LatencyJson {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Provider calls measured.
    pub calls: u64,
}

impl LatencyJson {
    /// From counts per bucket of [`limiter::delivery::LATENCY_BOUNDS_MS`], the slowest last.
    pub fn from_histogram(histogram: &[u64]) -> Self {
        let bounds = &limiter::delivery::LATENCY_BOUNDS_MS;
        let calls: u64 = histogram.iter().sum();
        let quantile = |q: f64| {
            if calls == 0 {
                return None;
            }
            // The smallest bucket holding at least q of the calls (nearest rank).
            let rank = ((q * calls as f64).ceil() as u64).max(1);
            let mut seen = 0;
            let bucket = histogram.iter().position(|&n| {
                seen += n;
                seen >= rank
            })?;
            let ms = bounds.get(bucket).or(bounds.last())?;
            Some(*ms as f64 / 1000.0)
        };
        Self {
            p50: quantile(0.5),
            p99: quantile(0.99),
            calls,
        }
    }
}

impl DeliveryStatsJson {
    pub fn new(
        now_us: i64,
        per_minute: &[(i64, [u64; 7])],
        latency: &[u64],
        backlog: DeliveryBacklog,
    ) -> Self {
        let mut totals = [0u64; 7];
        for (_, counts) in per_minute {
            for (total, n) in totals.iter_mut().zip(counts) {
                *total += n;
            }
        }
        Self {
            now: rfc3339_micros(now_us),
            totals: DeliveryCountsJson::from_counts(&totals),
            per_minute: per_minute
                .iter()
                .map(|(minute, counts)| DeliveryMinuteJson {
                    minute: rfc3339_micros(minute * 60_000_000),
                    counts: DeliveryCountsJson::from_counts(counts),
                })
                .collect(),
            latency: LatencyJson::from_histogram(latency),
            backlog,
        }
    }
}

#[cfg(test)]
mod latency_tests {
    use super::LatencyJson;

    #[test]
    fn percentiles_are_the_bounds_of_the_buckets_they_fall_in() {
        assert_eq!(
            LatencyJson::from_histogram(&[0; 14]),
            LatencyJson {
                p50: None,
                p99: None,
                calls: 0
            }
        );
        // 98 calls of 20–50 ms (bucket 5), one of 0.5–1 s, one slower than 10 s.
        let mut histogram = [0; 14];
        histogram[5] = 98;
        histogram[9] = 1;
        histogram[13] = 1;
        let latency = LatencyJson::from_histogram(&histogram);
        assert_eq!(latency.p50, Some(0.05));
        assert_eq!(latency.p99, Some(1.0));
        assert_eq!(latency.calls, 100);
    }

    #[test]
    fn the_apply_script_clears_every_latency_bucket() {
        let buckets = limiter::delivery::LATENCY_BOUNDS_MS.len() + 1;
        assert!(
            include_str!("apply.lua").contains(&format!("local latency_buckets = {buckets} ")),
            "apply.lua's latency_buckets must be {buckets}"
        );
    }
}
