//! Metric names exported by the archiver, as listed in `docs/metrics.md`. Recording goes
//! through the `metrics` facade; the binary installs the Prometheus exporter and its buckets.

pub const EVENTS_ARCHIVED: &str = "smsgate_archiver_events_archived_total";
pub const BATCH_SIZE: &str = "smsgate_archiver_batch_size";
pub const BATCH_DURATION: &str = "smsgate_archiver_batch_duration_seconds";
pub const INSERT_DURATION: &str = "smsgate_archiver_insert_duration_seconds";
pub const LAG_ENTRIES: &str = "smsgate_archiver_lag_entries";
pub const LAG_SECONDS: &str = "smsgate_archiver_lag_seconds";
pub const POSTGRES_ERRORS: &str = "smsgate_archiver_postgres_errors_total";
pub const DEAD_LETTERS: &str = "smsgate_dead_letters_total";
pub const STREAM_LENGTH: &str = "smsgate_stream_length";
pub const PARTITIONS_DROPPED: &str = "smsgate_archiver_partitions_dropped_total";
pub const RETENTION_ERRORS: &str = "smsgate_archiver_retention_errors_total";

/// Creates the archiver's counters at 0, so Prometheus sees their first increase and alerts on
/// them (`increase()` cannot see a counter whose first sample is already 1).
pub fn register() {
    metrics::counter!(EVENTS_ARCHIVED).increment(0);
    metrics::counter!(POSTGRES_ERRORS).increment(0);
    metrics::counter!(DEAD_LETTERS, "group" => crate::GROUP).increment(0);
    metrics::counter!(RETENTION_ERRORS).increment(0);
    for kind in crate::retention::Kind::ALL {
        metrics::counter!(PARTITIONS_DROPPED, "kind" => kind.as_str()).increment(0);
    }
}
