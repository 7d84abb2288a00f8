//! `/api/history`'s query against a real Redis and a real Postgres: decisions still only on
//! the streams are counted before the archiver has run, and an event both archived and on the
//! stream (archived after the tail was read, or kept on the stream by another group) counts
//! once.

#![allow(clippy::unwrap_used)]

#[path = "../../archiver/tests/common/mod.rs"]
mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::Harness;
use ledger::{Bucket, History, Tail};
use limiter::Outcome;

/// Accepted and rejected over every bucket.
fn totals(history: &History) -> (i64, i64) {
    history
        .buckets
        .iter()
        .fold((0, 0), |(a, r), b| (a + b.accepted, r + b.rejected))
}

/// What the streams hold now, counted by outcome.
async fn expected(h: &Harness) -> (i64, i64) {
    let events = h.stream_events().await;
    let count = |o: Outcome| events.values().filter(|e| e.outcome == o).count() as i64;
    (count(Outcome::Accepted), count(Outcome::Rejected))
}

fn last_hours() -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (now - TimeDelta::hours(2), now + TimeDelta::seconds(5))
}

async fn history(h: &Harness) -> History {
    let (since, until) = last_hours();
    ledger::history(&h.pg, &h.redis, &h.layout, Bucket::Hour, since, until)
        .await
        .unwrap()
}

#[tokio::test]
async fn decisions_not_yet_archived_are_counted_at_once() {
    let h = Harness::new(2).await;
    h.decide(300).await;
    let want = expected(&h).await;
    assert!(want.0 > 0 && want.1 > 0, "a mix of outcomes: {want:?}");
    assert_eq!(h.rows().await, 0, "the archiver has not run");
    assert_eq!(totals(&history(&h).await), want);
}

#[tokio::test]
async fn archived_and_unarchived_events_count_exactly_once() {
    let h = Harness::new(2).await;
    h.decide(200).await;
    let first = expected(&h).await;
    // Archived, acked and trimmed: only the archive has these.
    h.archiver(h.config("a")).drain().await.unwrap();
    assert_eq!(h.rows().await, first.0 + first.1);
    assert_eq!(h.xlen(0).await + h.xlen(1).await, 0);
    // Only on the stream.
    h.decide(150).await;
    let second = expected(&h).await;
    let want = (first.0 + second.0, first.1 + second.1);
    assert_eq!(totals(&history(&h).await), want);

    // The tail read, then archived before the count: both sources hold those events now.
    let (since, until) = last_hours();
    let tail = Tail::read(&h.redis, &h.layout, since, until).await.unwrap();
    assert_eq!(tail.len() as i64, second.0 + second.1);
    h.archiver(h.config("a")).drain().await.unwrap();
    assert_eq!(h.rows().await, want.0 + want.1);
    let counted = ledger::counted(&h.pg, &tail, Bucket::Hour, since, until)
        .await
        .unwrap();
    assert_eq!(totals(&counted), want, "counted once, not twice");
    assert_eq!(totals(&history(&h).await), want);
}

#[tokio::test]
async fn ranges_before_1970_or_empty_read_no_tail_and_do_not_fail() {
    // Schemathesis once sent `until=0056-…`: the tail read asked XRANGE for a negative id and
    // the API answered 503.
    let h = Harness::new(2).await;
    h.decide(20).await;
    let ancient = DateTime::parse_from_rfc3339("0056-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let now = Utc::now();
    for (since, until) in [
        (ancient - TimeDelta::days(1), ancient),
        (
            DateTime::UNIX_EPOCH - TimeDelta::hours(1),
            DateTime::UNIX_EPOCH,
        ),
        (now, now),
        (now, now - TimeDelta::hours(1)),
    ] {
        let tail = Tail::read(&h.redis, &h.layout, since, until).await.unwrap();
        assert!(tail.is_empty(), "[{since}, {until}) holds no decision");
        let history = ledger::history(&h.pg, &h.redis, &h.layout, Bucket::Hour, since, until)
            .await
            .unwrap();
        assert_eq!(totals(&history), (0, 0));
    }
}
