//! Metric names (the list in `docs/metrics.md`) and the HTTP latency middleware.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::SharedString;

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

/// Creates every series of the request counters at 0, so Prometheus sees the first increase
/// (`increase()` cannot see a counter whose first sample is already 1).
/// Labels are the policy's rule and window names (operator configuration, never user input).
pub fn register(rules: &limiter::Ruleset) {
    metrics::describe_counter!(REQUESTS, "POST /api/sms decisions by outcome");
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
    for outcome in ["accepted", "rejected", "blocked", "invalid", "unavailable"] {
        metrics::counter!(REQUESTS, "outcome" => outcome).increment(0);
    }
    for rule in rules.rules() {
        let series = if rule.mode == limiter::Mode::Enforce {
            VIOLATIONS
        } else {
            SHADOW_VIOLATIONS
        };
        for window in rule.limits.windows() {
            metrics::counter!(series, "rule" => rule.name.clone(), "window" => rule.window_name(window))
                .increment(0);
        }
    }
    for reason in limiter::BlockReason::ALL {
        metrics::counter!(BLOCKED, "reason" => reason.as_str()).increment(0);
    }
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
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_DURATION,
        "method" => method,
        "route" => route,
        "status" => status_label(response.status())
    )
    .record(started.elapsed().as_secs_f64());
    response
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
