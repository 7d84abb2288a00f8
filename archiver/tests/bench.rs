//! The archive benchmark runs end to end (small here; `smsgate bench --mode archive` or
//! `ARCHIVE_BENCH_EVENTS=200000 cargo test --release -p archiver --test bench -- --nocapture`
//! for real figures).

#![allow(clippy::unwrap_used)]

mod common;

#[tokio::test]
async fn the_archive_benchmark_archives_everything_and_reports_a_ratio() {
    let h = common::Harness::new(1).await;
    let events = std::env::var("ARCHIVE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let report = archiver::bench::run(&h.redis, &h.pg, &h.layout, events)
        .await
        .unwrap();
    println!("{report}");
    assert_eq!(h.rows().await, events as i64);
    assert!(report.ratio() > 0.0);
    assert_eq!(
        h.xlen(0).await,
        0,
        "the benchmark drains and trims for real"
    );
}
