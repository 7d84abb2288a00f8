//! Logging (tracing, `RUST_LOG`) and the process-wide Prometheus recorder.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Entries-per-batch buckets for the archiver's batch-size histogram.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
];

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Logging for commands whose stdout is their output (`replay`, `audit`): to stderr, and only
/// warnings unless `RUST_LOG` says otherwise.
pub fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The recorder is global to the process; every `App` in it (tests start several) shares it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    ingest::telemetry::LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("smsgate_archiver_batch_size".into()),
                        BATCH_SIZE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(limiter::BATCH_SIZE.into()),
                        limiter::BATCH_SIZE_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty");
            let handle = builder
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            // Histograms are drained into their buckets by upkeep; without it they only grow.
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// `smsgate_build_info{version, role} 1`: tells Prometheus which role a target runs.
pub fn record_build_info(role: &str) {
    metrics::gauge!(
        "smsgate_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "role" => role.to_owned()
    )
    .set(1.0);
}
