//! The archive benchmark runs end to end (small here; `smsgate bench --mode archive` or
//! `ARCHIVE_BENCH_EVENTS=200000 cargo test --release -p archiver --test bench -- --nocapture`
//! for real figures).

#![allow(clippy::unwrap_used)]

#[path = "../../archiver/tests/common/mod.rs"]
mod common;

#[tokio::test]
async fn the_archive_benchmark_archives_everything_and_reports_a_ratio() {
    let h = common::Harness::new(2).await;
    let events: usize = std::env::var("ARCHIVE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let report = smsgate::bench::archive::run(&h.redis, &h.pg, &h.layout, events)
        .await
        .unwrap();
    println!("{report}");

    // What was measured is the real work: every generated event is in the archive once, as
    // generated (a quarter rejected, a third with a sender, on both partitions), and nothing
    // was set aside or left in the streams.
    let (rows, distinct, rejected, with_sender, partitions): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE outcome = 'rejected'),
                    count(\"from\"), count(DISTINCT partition) FROM sms_events",
        )
        .fetch_one(&h.pg)
        .await
        .unwrap();
    let n = events as i64;
    assert_eq!((rows, distinct), (n, n), "every event archived once");
    assert_eq!(rejected, (n + 3) / 4, "outcomes kept");
    assert_eq!(with_sender, (n + 2) / 3, "senders kept");
    assert_eq!(partitions, 2);
    for p in 0..2 {
        assert_eq!(
            h.xlen(p).await,
            0,
            "the benchmark drains and trims for real"
        );
        assert!(h.dead_letters(p).await.is_empty(), "nothing dead-lettered");
    }

    // The figures are consistent and plausible: both sides took time, and the archive is
    // neither faster than a plain COPY by a margin only skipped work explains nor orders of
    // magnitude slower. Debug builds on a
    // loaded machine measure about 0.25; release about 0.56 (README).
    assert_eq!(report.events, events);
    assert!(report.archive > std::time::Duration::ZERO && report.copy > std::time::Duration::ZERO);
    let ratio = report.ratio();
    assert!(
        (0.02..3.0).contains(&ratio),
        "archive/COPY ratio {ratio:.3}"
    );
}
