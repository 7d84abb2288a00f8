//! Retention against a real Redis and a real Postgres: events decided over the last 100 days
//! are archived into their kind's day partitions; the maintenance step drops exactly the days
//! past each kind's retention (a `DROP`, never a `DELETE`), keeps the rest row for row, and
//! replay, history and audit say which range is no longer held. The audit of what is held stays
//! exact because it judges only where a decision's whole quota history is still there.

#![allow(clippy::unwrap_used)]

#[path = "../../archiver/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use archiver::{Kind, RetainedFrom, Retention};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::Harness;
use fred::interfaces::StreamsInterface;
use ledger::{Auditor, Bucket, Replay, ReplayOptions};
use limiter::delivery::{DeliveryStatus, StatusEvent, encode_status};
use limiter::event::SCHEMA_VERSION;
use limiter::model::Model;
use limiter::{Event, Outcome, Policy, StoredForm, codec};

const HOUR_US: i64 = 3_600_000_000;

/// One client's requests every 7 hours for 100 days under `1/1d`, decided by the model (so
/// about one in four is accepted, and every rejection depends on an accepted request up to a
/// day before it), a blocked request every 5 days and a delivery status after each accepted.
fn hundred_days(now: DateTime<Utc>) -> (Vec<Event>, Vec<StatusEvent>) {
    let policy = Policy::parse("1/1d").unwrap();
    let mut model = Model::new(policy.clone());
    let start = now.timestamp_micros() - 100 * 24 * HOUR_US;
    let (mut events, mut statuses) = (Vec::new(), Vec::new());
    let mut at = start;
    let mut i = 0;
    while at < now.timestamp_micros() - HOUR_US {
        let blocked = i % 17 == 16;
        let decision = (!blocked).then(|| model.decide("198.51.100.7|+14155550123", at));
        let event = Event {
            v: SCHEMA_VERSION,
            id: uuid::Uuid::now_v7(),
            at_us: at,
            ip: "198.51.100.7".parse().unwrap(),
            to: "+14155550123".into(),
            from: None,
            message: "Your code is ••••••".into(),
            stored: Some(StoredForm::Redacted),
            segments: 1,
            outcome: decision.as_ref().map_or(Outcome::Blocked, |d| d.outcome),
            violated: decision.as_ref().map_or(vec![], |d| d.violated.clone()),
            retry_after: decision.as_ref().map_or(0, |d| d.retry_after),
            policy: policy.to_string(),
            shadow_violated: vec![],
            reason: blocked.then(|| "number-type".into()),
            country: None,
            client: None,
            api_client: None,
            ip_unattributed: false,
        };
        if event.outcome == Outcome::Accepted {
            let mut status =
                StatusEvent::new(event.id, &event.to, DeliveryStatus::Delivered, "log");
            status.at_us = at + 1_000;
            statuses.push(status);
        }
        events.push(event);
        at += 7 * HOUR_US;
        i += 1;
    }
    (events, statuses)
}

fn day_end(at_us: i64) -> DateTime<Utc> {
    let day = DateTime::from_timestamp_micros(at_us).unwrap().date_naive();
    day.succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

fn kind_of(outcome: Outcome) -> Kind {
    match outcome {
        Outcome::Accepted => Kind::Accepted,
        Outcome::Rejected => Kind::Rejected,
        Outcome::Blocked => Kind::Blocked,
    }
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&h.pg)
        .await
        .unwrap()
}

async fn partitions(h: &Harness) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname IN ('sms_events_accepted', 'sms_events_rejected', 'sms_events_blocked', 'sms_status')",
    )
    .fetch_all(&h.pg)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test]
async fn maintenance_drops_only_days_past_retention_and_readers_report_the_gap() {
    let h = Harness::new(1).await;
    let now = Utc::now();
    let (events, statuses) = hundred_days(now);
    // On the stream as the script and the dispatcher would have put them, in time order with
    // entry ids at the decision's millisecond (the audit checks the two agree).
    let mut records: Vec<(i64, Vec<u8>)> = events
        .iter()
        .map(|e| (e.at_us, codec::encode(e)))
        .chain(statuses.iter().map(|s| (s.at_us, encode_status(s))))
        .collect();
    records.sort_by_key(|(at, _)| *at);
    for (at, bytes) in &records {
        let id = format!("{}-0", at / 1_000);
        let _: String = h
            .client()
            .xadd(
                h.layout.stream(0),
                false,
                None,
                id.as_str(),
                vec![(codec::EVENT_FIELD, bytes.as_slice())],
            )
            .await
            .unwrap();
    }
    let retention: Retention = "accepted=30d,rejected=90d,blocked=90d,delivery=30d"
        .parse()
        .unwrap();
    let archiver = h.archiver(archiver::ArchiverConfig {
        retention: retention.clone(),
        ..h.config("retention")
    });
    let report = archiver.drain().await.unwrap();
    assert_eq!(report.entries, records.len());
    assert_eq!(h.rows().await, events.len() as i64);
    assert_eq!(
        count(&h, "SELECT count(*) FROM sms_status").await,
        statuses.len() as i64
    );
    let before = partitions(&h).await;

    let done = archiver.maintain(now).await.unwrap();

    // Exactly the day partitions whose whole day is past the kind's retention went.
    let expected_dropped: BTreeSet<String> = before
        .iter()
        .filter(|name| {
            Kind::ALL.iter().any(|kind| {
                let Some(day) = name
                    .strip_prefix(kind.parent())
                    .and_then(|s| s.strip_prefix('_'))
                    .and_then(|s| NaiveDate::parse_from_str(s, "%Y%m%d").ok())
                else {
                    return false;
                };
                let end = day
                    .succ_opt()
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc();
                end <= retention.cutoff(*kind, now).unwrap()
            })
        })
        .cloned()
        .collect();
    assert!(!expected_dropped.is_empty());
    assert_eq!(
        done.dropped.iter().cloned().collect::<BTreeSet<_>>(),
        expected_dropped
    );
    let after = partitions(&h).await;
    assert_eq!(
        after,
        before
            .difference(&expected_dropped)
            .cloned()
            .chain(done.created.iter().cloned())
            .collect()
    );
    // Partitions ahead: today and the next three days of every kind.
    for d in 0..=3 {
        let day = (now + TimeDelta::days(d)).date_naive();
        for kind in Kind::ALL {
            assert!(
                after.contains(&kind.partition(day)),
                "{}",
                kind.partition(day)
            );
        }
    }

    // Every row whose day is within retention is still there, and none other.
    let kept: Vec<&Event> = events
        .iter()
        .filter(|e| day_end(e.at_us) > retention.cutoff(kind_of(e.outcome), now).unwrap())
        .collect();
    assert!(kept.len() < events.len());
    assert_eq!(h.rows().await, kept.len() as i64);
    let kept_statuses = statuses
        .iter()
        .filter(|s| day_end(s.at_us) > retention.cutoff(Kind::Delivery, now).unwrap())
        .count();
    assert_eq!(
        count(&h, "SELECT count(*) FROM sms_status").await,
        kept_statuses as i64
    );
    let by_outcome: BTreeMap<String, i64> =
        sqlx::query_as("SELECT outcome, count(*) FROM sms_events GROUP BY 1")
            .fetch_all(&h.pg)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for outcome in [Outcome::Accepted, Outcome::Rejected, Outcome::Blocked] {
        let expected = kept.iter().filter(|e| e.outcome == outcome).count() as i64;
        assert_eq!(
            by_outcome.get(outcome.as_str()).copied().unwrap_or(0),
            expected
        );
    }

    // What is no longer held, per kind: the end of the newest dropped day.
    let retained = RetainedFrom::load(&h.pg).await.unwrap();
    for kind in Kind::ALL {
        let newest_dropped = expected_dropped
            .iter()
            .filter_map(|n| n.strip_prefix(kind.parent())?.strip_prefix('_'))
            .filter_map(|s| NaiveDate::parse_from_str(s, "%Y%m%d").ok())
            .max();
        let from = newest_dropped.map(|d| {
            d.succ_opt()
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        });
        assert_eq!(retained.0.get(&kind).copied(), from, "{kind}");
    }
    // Rejected and blocked go back 90 days, accepted only 30: all three have gaps in 100 days.
    let all = [Kind::Accepted, Kind::Rejected, Kind::Blocked];
    assert_eq!(retained.gaps(&all, None).len(), 3);
    let forty_days_ago = (now - TimeDelta::days(40)).timestamp_micros();
    assert_eq!(
        retained.gaps(&all, Some(forty_days_ago)),
        vec![(Kind::Accepted, retained.0[&Kind::Accepted])]
    );

    // A second step at the same instant drops nothing more.
    let again = archiver.maintain(now).await.unwrap();
    assert!(
        again.dropped.is_empty() && again.created.is_empty(),
        "{again:?}"
    );

    // Replay passes on exactly what is held, in order.
    let mut replay = Replay::new(
        h.redis.clone(),
        h.pg.clone(),
        &h.layout,
        ReplayOptions::default(),
    );
    let mut replayed = Vec::new();
    while let Some(item) = replay.next().await.unwrap() {
        replayed.push(item);
    }
    assert_eq!(
        replayed.iter().map(|r| r.event.id).collect::<Vec<_>>(),
        kept.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // History names the gap instead of showing quiet days.
    let volumes = ledger::history(
        &h.pg,
        &h.redis,
        &h.layout,
        Bucket::Day,
        now - TimeDelta::days(100),
        now,
    )
    .await
    .unwrap();
    let not_held: Vec<Kind> = volumes.not_held.iter().map(|n| n.kind).collect();
    assert_eq!(not_held, vec![Kind::Accepted, Kind::Rejected]);
    assert_eq!(volumes.retained_from.len(), 4);

    // The audit over what is held: judged from where a whole day of accepted history is held,
    // every decision re-derives exactly. Judging from the first held event instead would see
    // rejections whose accepted request was dropped: the gap is real, and it is skipped.
    let lookback = Duration::from_secs(86_400);
    let from = retained.judged_from(None, lookback).unwrap();
    let mut exact = Auditor::new(Some(from));
    let mut naive = Auditor::new(None);
    for item in &replayed {
        exact.observe(item);
        naive.observe(item);
    }
    let exact = exact.finish();
    assert!(exact.consistent(), "{exact}");
    assert!(exact.checked > 50 && exact.history > 0, "{exact}");
    assert!(exact.rejected > 0 && exact.accepted > 0, "{exact}");
    let naive = naive.finish();
    assert!(!naive.consistent(), "{naive}");
}
