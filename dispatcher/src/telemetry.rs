//! Metric names of delivery (documented in docs/metrics.md).

/// Counter: status changes recorded, by `status` and `provider`.
pub const STATUS: &str = "smsgate_delivery_status_total";
/// Counter: provider calls, by `provider` and `result` (`sent`, `transient`, `permanent`).
pub const ATTEMPTS: &str = "smsgate_delivery_attempts_total";
/// Histogram: seconds one provider call took, by `provider`.
pub const PROVIDER_LATENCY: &str = "smsgate_provider_latency_seconds";
/// Gauge: messages on the retry schedule (waiting for a retry or in flight).
pub const SCHEDULED: &str = "smsgate_delivery_scheduled";
/// Counter: client status callbacks, by `result` (`answered`, `failed`, `refused`, `expired`).
pub const CALLBACKS: &str = "smsgate_status_callbacks_total";
/// Counter: provider receipts (Twilio's, SMPP deliver_sm), by `result` (`recorded`, `ignored`,
/// `forged`, `unknown`, and for SMPP `part`: one part of a longer message delivered).
pub const RECEIPTS: &str = "smsgate_provider_receipts_total";
/// Gauge: 1 while the `smpp` provider has a bound session with its SMSC.
pub const SMPP_BOUND: &str = "smsgate_smpp_bound";

/// Creates every series at 0, so rates and alerts see the first event.
pub fn describe(provider: &'static str) {
    for status in limiter::delivery::DeliveryStatus::ALL {
        metrics::counter!(STATUS, "status" => status.as_str(), "provider" => provider).increment(0);
    }
    for result in ["sent", "transient", "permanent"] {
        metrics::counter!(ATTEMPTS, "provider" => provider, "result" => result).increment(0);
    }
    for result in ["answered", "failed", "refused", "expired"] {
        metrics::counter!(CALLBACKS, "result" => result).increment(0);
    }
}
