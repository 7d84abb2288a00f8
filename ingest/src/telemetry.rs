//! Metric names (the list in `docs/metrics.md`) and the HTTP latency middleware.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram, SharedString};

pub const REQUESTS: &str = "smsgate_requests_total";
pub const VIOLATIONS: &str = "smsgate_violations_total";
pub const SHADOW_VIOLATIONS: &str = "smsgate_shadow_violations_total";
pub const BLOCKED: &str = "smsgate_blocked_total";
pub const HTTP_DURATION: &str = "smsgate_http_request_duration_seconds";
pub const SCRIPT_DURATION: &str = "smsgate_redis_script_duration_seconds";

/// Latency buckets in seconds, from half a millisecond to ten seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The series a decision moves, registered once per policy (a SIGHUP's policy registers its
/// own): a handle increments its atomic, where `counter!` would build the series' key and look
/// it up on every request.
pub struct DecisionMeters {
    accepted: Counter,
    rejected: Counter,
    blocked: Counter,
    /// `smsgate_blocked_total` per reason, in [`limiter::BlockReason::ALL`]'s order.
    blocked_by_reason: Vec<(limiter::BlockReason, Counter)>,
    script_duration: Histogram,
    /// Per window of the policy, in policy order (the order of a decision's windows).
    windows: Vec<WindowSeries>,
}

/// The two series of one policy window, each registered on first use.
struct WindowSeries {
    rule: String,
    window: String,
    violations: OnceLock<Counter>,
    shadow: OnceLock<Counter>,
}

impl WindowSeries {
    fn violations(&self) -> &Counter {
        self.violations.get_or_init(|| {
            metrics::counter!(VIOLATIONS, "rule" => self.rule.clone(), "window" => self.window.clone())
        })
    }

    fn shadow(&self) -> &Counter {
        self.shadow.get_or_init(|| {
            metrics::counter!(SHADOW_VIOLATIONS, "rule" => self.rule.clone(), "window" => self.window.clone())
        })
    }
}

impl DecisionMeters {
    /// Describes every series and creates the request counters at 0, so Prometheus sees the
    /// first increase (`increase()` cannot see a counter whose first sample is already 1).
    /// Labels are the policy's rule and window names (operator configuration, never user input).
    pub fn register(rules: &limiter::Ruleset) -> Self {
        describe();
        for outcome in ["invalid", "unavailable"] {
            metrics::counter!(REQUESTS, "outcome" => outcome).increment(0);
        }
        let outcome = |outcome: &'static str| {
            let counter = metrics::counter!(REQUESTS, "outcome" => outcome);
            counter.increment(0);
            counter
        };
        let windows = rules
            .rules()
            .iter()
            .flat_map(|rule| {
                rule.limits.windows().iter().map(|window| {
                    let series = WindowSeries {
                        rule: rule.name.clone(),
                        window: rule.window_name(window),
                        violations: OnceLock::new(),
                        shadow: OnceLock::new(),
                    };
                    // The series of the rule's mode exists from the start; the other only once
                    // used (an allow-listed client's trial of an enforced rule).
                    match rule.mode {
                        limiter::Mode::Enforce => series.violations(),
                        limiter::Mode::Shadow => series.shadow(),
                    }
                    .increment(0);
                    series
                })
            })
            .collect();
        let blocked_by_reason = limiter::BlockReason::ALL
            .into_iter()
            .map(|reason| {
                let counter = metrics::counter!(BLOCKED, "reason" => reason.as_str());
                counter.increment(0);
                (reason, counter)
            })
            .collect();
        Self {
            accepted: outcome("accepted"),
            rejected: outcome("rejected"),
            blocked: outcome("blocked"),
            blocked_by_reason,
            script_duration: metrics::histogram!(SCRIPT_DURATION),
            windows,
        }
    }

    /// How long one decision took, as ingest saw it.
    pub fn record_script(&self, elapsed: std::time::Duration) {
        self.script_duration.record(elapsed.as_secs_f64());
    }

    /// A decision's outcome; its violated windows, shadow trials and block reason unless it
    /// is a replayed answer (those were counted when it was decided).
    pub fn count(&self, decision: &limiter::Decision) {
        match decision.outcome {
            limiter::Outcome::Accepted => self.accepted.increment(1),
            limiter::Outcome::Rejected => self.rejected.increment(1),
            limiter::Outcome::Blocked => self.blocked.increment(1),
        }
        if decision.replayed {
            return;
        }
        if let Some(reason) = decision.reason {
            let reason = self.blocked_by_reason.iter().find(|(r, _)| *r == reason);
            reason.inspect(|(_, counter)| counter.increment(1));
        }
        // A decision lists every window of its policy, or none (blocked).
        for (window, series) in decision.windows.iter().zip(&self.windows) {
            if window.violated() {
                series.violations().increment(1);
            }
            if window.shadow_violated {
                series.shadow().increment(1);
            }
        }
    }
}

/// What every series means, for `/metrics`' `# HELP` lines.
fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "decisions and refused requests of both APIs by outcome"
    );
    metrics::describe_counter!(VIOLATIONS, "rejected requests per rule and violated window");
    metrics::describe_counter!(
        SHADOW_VIOLATIONS,
        "requests a shadow rule's window would have refused, per rule and window"
    );
    metrics::describe_counter!(
        BLOCKED,
        "requests refused outright by the policy, per reason"
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    metrics::describe_histogram!(
        SCRIPT_DURATION,
        metrics::Unit::Seconds,
        "one decision as seen by ingest: queued for its call, then the call"
    );
    metrics::describe_histogram!(
        limiter::BATCH_SIZE,
        "requests decided by one decide.lua call under group commit"
    );
}

/// The method as a metric label: the standard methods by name, anything else `other`, so a
/// client making up methods cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Records every request's latency by method (a closed set), matched route (the route's
/// template, never the raw path, whose cardinality a client controls) and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status();
    match route {
        Some(route) => http_histogram(method, route, status).record(elapsed),
        None => metrics::histogram!(
            HTTP_DURATION,
            "method" => method,
            "route" => "unmatched",
            "status" => status_label(status)
        )
        .record(elapsed),
    }
    response
}

/// The series of `HTTP_DURATION` a (method, route, status) names, from a cache per worker
/// thread: the handful of combinations a server answers with is found by comparing three
/// short values, where the registry would copy and hash the series' labels on every request.
fn http_histogram(method: &'static str, route: MatchedPath, status: StatusCode) -> Histogram {
    /// More combinations than a router has routes × methods × statuses answered is not a cache.
    const CAPACITY: usize = 64;
    type Entry = (&'static str, MatchedPath, StatusCode, Histogram);
    thread_local! {
        static SERIES: std::cell::RefCell<Vec<Entry>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SERIES.with_borrow_mut(|series| {
        let same =
            |(m, r, s, _): &&Entry| *m == method && r.as_str() == route.as_str() && *s == status;
        if let Some((.., histogram)) = series.iter().find(same) {
            return histogram.clone();
        }
        let histogram = metrics::histogram!(
            HTTP_DURATION,
            "method" => method,
            "route" => route.as_str().to_owned(),
            "status" => status_label(status)
        );
        if series.len() < CAPACITY {
            series.push((method, route, status, histogram.clone()));
        }
        histogram
    })
}

/// The status as a label: the codes smsgate answers with are static text, not a string
/// allocated per request.
fn status_label(status: StatusCode) -> SharedString {
    let known = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return SharedString::from(status.as_u16().to_string()),
    };
    SharedString::const_str(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_label_is_its_code() {
        for code in 100..600 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(status_label(status).as_ref(), code.to_string());
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        for made_up in ["FOO", "get", "XYZZY-1"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
