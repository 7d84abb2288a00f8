//! Replay and audit against a real Redis and a real Postgres: events split between the archive
//! and the stream come out exactly once and in order; an audit of real decisions passes and
//! names a tampered event; the what-if answer matches the policy model; the follow mode sees
//! new events.

#![allow(clippy::unwrap_used)]

#[path = "../../archiver/tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::Harness;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use ledger::{
    Auditor, Filter, Mismatch, Origin, Replay, ReplayOptions, Replayed, StreamId, WhatIf,
};
use limiter::model::Model;
use limiter::{Event, Outcome, Policy};

async fn replay(h: &Harness, filter: Filter) -> Vec<Replayed> {
    let mut reader = Replay::new(
        h.redis.clone(),
        h.pg.clone(),
        &h.layout,
        ReplayOptions {
            filter,
            follow: false,
        },
    );
    let mut all = Vec::new();
    while let Some(item) = reader.next().await.unwrap() {
        all.push(item);
    }
    all
}

async fn audit(h: &Harness, since: Option<i64>, lookback: Duration) -> (Vec<Mismatch>, u64) {
    let filter = Filter {
        since_us: since.map(|s| s - lookback.as_micros() as i64),
        ..Filter::default()
    };
    let mut auditor = Auditor::new(since);
    let mismatches: Vec<Mismatch> = replay(h, filter)
        .await
        .iter()
        .filter_map(|item| auditor.observe(item))
        .collect();
    (mismatches, auditor.finish().checked)
}

/// Asserts per-partition stream order, the cross-partition (time, partition, id) order, and
/// that each item equals the event recorded under its id.
fn assert_in_order_and_equal(items: &[Replayed], expected: &HashMap<(u16, String), Event>) {
    let mut last: HashMap<u16, StreamId> = HashMap::new();
    let mut seen = HashSet::new();
    for pair in items.windows(2) {
        let key = |r: &Replayed| (r.event.at_us, r.partition, r.stream_id);
        assert!(
            key(&pair[0]) < key(&pair[1]),
            "out of order: {:?} then {:?}",
            key(&pair[0]),
            key(&pair[1])
        );
    }
    for item in items {
        if let Some(prev) = last.insert(item.partition, item.stream_id) {
            assert!(
                prev < item.stream_id,
                "partition {} goes back",
                item.partition
            );
        }
        assert!(
            seen.insert(item.event.id),
            "event {} passed twice",
            item.event.id
        );
        let recorded = &expected[&(item.partition, item.stream_id.to_string())];
        assert_eq!(&item.event, recorded);
        assert!(item.at_matches && !item.differs_from_stream);
    }
}

#[tokio::test]
async fn half_archived_half_on_the_stream_replays_every_event_exactly_once_in_order() {
    let h = Harness::new(4).await;
    h.decide(1_000).await;
    // Partitions 0 and 1 keep their archived entries on the stream (another group lags), so the
    // archive and the stream overlap there; 2 and 3 are trimmed after archiving.
    for p in [0, 1] {
        let _: Value = h
            .client()
            .xgroup_create(h.layout.stream(p), "lagging", "0", false)
            .await
            .unwrap();
    }
    // A consumer that died holding 50 entries of partition 3: they stay pending and unarchived
    // below ids the archiver does archive, and stay on the stream.
    let held = h.read_as(3, "dead-one", eventlog::From::New, 50).await;
    assert_eq!(held.len(), 50);
    let mut expected = h.stream_events().await;
    let archiver = h.archiver(h.config("a1"));
    let first = archiver.drain().await.unwrap();
    assert_eq!(first.inserted, 950);
    h.decide(1_000).await;
    expected.extend(h.stream_events().await);
    assert_eq!(expected.len(), 2_000);
    let on_stream: u64 = [
        h.xlen(0).await,
        h.xlen(1).await,
        h.xlen(2).await,
        h.xlen(3).await,
    ]
    .iter()
    .sum();
    assert!(on_stream < 2_000, "some archived events are trimmed");
    assert!(h.xlen(2).await > 0 && h.rows().await == 950);

    let items = replay(&h, Filter::default()).await;
    assert_eq!(items.len(), 2_000);
    assert_in_order_and_equal(&items, &expected);
    let origins: HashSet<_> = items.iter().map(|i| i.origin).collect();
    assert_eq!(origins, HashSet::from([Origin::Archive, Origin::Stream]));
    let held_ids: HashSet<String> = held.iter().map(|e| e.id.to_string()).collect();
    assert!(
        items
            .iter()
            .filter(|i| i.partition == 3 && held_ids.contains(&i.stream_id.to_string()))
            .all(|i| i.origin == Origin::Stream)
    );

    // Archive the rest (the dead consumer's entries too) and replay again: still all, once.
    let late = h.archiver(archiver::ArchiverConfig {
        claim_idle: Duration::ZERO,
        ..h.config("a2")
    });
    late.drain().await.unwrap();
    assert_eq!(h.rows().await, 2_000);
    let again = replay(&h, Filter::default()).await;
    assert_eq!(again.len(), 2_000);
    assert_in_order_and_equal(&again, &expected);

    // Filters narrow both sources the same way.
    let some = &items[700];
    let filter = Filter {
        to: Some(some.event.to.clone()),
        outcome: Some(Outcome::Rejected),
        since_us: Some(items[100].event.at_us),
        until_us: Some(items[1_900].event.at_us),
        ip: None,
    };
    let narrowed = replay(&h, filter.clone()).await;
    let key = |i: &Replayed| (i.partition, i.stream_id, i.event.clone());
    let expected_narrowed: Vec<_> = again
        .iter()
        .filter(|i| filter.matches(&i.event))
        .map(key)
        .collect();
    assert!(!narrowed.is_empty());
    assert_eq!(
        narrowed.iter().map(key).collect::<Vec<_>>(),
        expected_narrowed
    );
}

#[tokio::test]
async fn audit_passes_on_ten_thousand_real_decisions_and_names_a_tampered_outcome_and_time() {
    let h = Harness::new(4).await;
    h.decide(10_000).await;
    let archiver = h.archiver(h.config("a1"));
    assert_eq!(archiver.drain().await.unwrap().inserted, 10_000);
    let items = replay(&h, Filter::default()).await;
    assert_eq!(items.len(), 10_000);
    let clients: HashSet<_> = items.iter().map(|i| i.event.client_key()).collect();
    assert_eq!(clients.len(), 97);

    let (mismatches, checked) = audit(&h, None, Duration::ZERO).await;
    assert_eq!(checked, 10_000);
    assert!(mismatches.is_empty(), "{}", mismatches[0]);

    // From the middle: consistent with the history before `since` loaded, and the check can
    // fail: without that history, the first decisions of the range look wrong.
    let since = items[5_000].event.at_us;
    let (mismatches, checked) = audit(&h, Some(since), Duration::from_secs(60)).await;
    assert!(mismatches.is_empty(), "{}", mismatches[0]);
    assert_eq!(checked, 5_000);
    let (without_history, _) = audit(&h, Some(since), Duration::ZERO).await;
    assert!(!without_history.is_empty());

    // A rejected decision rewritten as accepted.
    let victim = items
        .iter()
        .rev()
        .find(|i| i.event.outcome == Outcome::Rejected)
        .unwrap();
    sqlx::query("UPDATE sms_events SET outcome = 'accepted', violated = '{}', retry_after = 0 WHERE id = $1")
        .bind(victim.event.id)
        .execute(&h.pg)
        .await
        .unwrap();
    let (mismatches, _) = audit(&h, None, Duration::ZERO).await;
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert_eq!(mismatches[0].id, victim.event.id);
    assert_eq!(mismatches[0].stream_id, victim.stream_id);
    assert!(mismatches[0].reasons[0].contains("recorded accepted but the policy rejects"));
    sqlx::query(
        "UPDATE sms_events SET outcome = 'rejected', violated = $2, retry_after = $3 WHERE id = $1",
    )
    .bind(victim.event.id)
    .bind(&victim.event.violated)
    .bind(victim.event.retry_after as i64)
    .execute(&h.pg)
    .await
    .unwrap();
    assert!(audit(&h, None, Duration::ZERO).await.0.is_empty());

    // A decision time moved two seconds later, `at` and `at_us` together.
    let moved = &items[4_321];
    sqlx::query("UPDATE sms_events SET at_us = at_us + 2000000, at = at + interval '2 seconds' WHERE id = $1")
        .bind(moved.event.id)
        .execute(&h.pg)
        .await
        .unwrap();
    let (mismatches, _) = audit(&h, None, Duration::ZERO).await;
    assert!(!mismatches.is_empty());
    let named = mismatches
        .iter()
        .find(|m| m.id == moved.event.id)
        .expect("the moved event is named");
    assert!(
        named
            .reasons
            .iter()
            .any(|r| r.contains("from its stream entry's time")),
        "{named}"
    );

    // Only `at` changed: the row disagrees with itself. Moved an hour within its UTC day, so
    // it stays in its day's partition (an hour back from just after midnight would find none).
    let edited = &items[77];
    sqlx::query(
        "UPDATE sms_events SET at = CASE \
           WHEN at - interval '1 hour' >= date_trunc('day', at, 'UTC') THEN at - interval '1 hour' \
           ELSE at + interval '1 hour' END \
         WHERE id = $1",
    )
    .bind(edited.event.id)
    .execute(&h.pg)
    .await
    .unwrap();
    let (mismatches, _) = audit(&h, None, Duration::ZERO).await;
    let named = mismatches
        .iter()
        .find(|m| m.id == edited.event.id)
        .expect("the edited event is named");
    assert!(
        named.reasons.iter().any(|r| r.contains("`at` disagrees")),
        "{named}"
    );
}

#[tokio::test]
async fn the_what_if_answer_matches_a_model_of_the_other_policy_on_the_same_events() {
    let h = Harness::new(2).await;
    h.decide(3_000).await;
    let events = h.stream_events().await;
    // Archive the first part: the what-if reads both sources.
    let archiver = h.archiver(h.config("a1"));
    archiver.drain().await.unwrap();
    h.decide(1_000).await;
    let mut events: Vec<((u16, StreamId), Event)> = events
        .into_iter()
        .chain(h.stream_events().await)
        .map(|((p, id), e)| ((p, id.parse().unwrap()), e))
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(events.len(), 4_000);

    let other = Policy::parse("5/1m,20/1d").unwrap();
    let mut what_if = WhatIf::new(limiter::Ruleset::seed(other.clone()), None);
    for item in replay(&h, Filter::default()).await {
        what_if.observe(&item);
    }
    let answer = what_if.finish();

    // The model, fed each client's attempts in stream order.
    events.sort_by_key(|(key, _)| *key);
    let mut model = Model::new(other);
    let (mut accepted, mut rejected) = (0, 0);
    let mut by_window: HashMap<String, u64> = HashMap::new();
    for (_, event) in &events {
        let d = model.decide(&event.client_key(), event.at_us);
        match d.outcome {
            Outcome::Accepted => accepted += 1,
            Outcome::Rejected | Outcome::Blocked => rejected += 1,
        }
        for w in d.violated {
            *by_window.entry(w).or_default() += 1;
        }
    }
    assert_eq!(answer.attempts, 4_000);
    assert_eq!((answer.accepted, answer.rejected), (accepted, rejected));
    for (name, n) in &answer.rejected_by_window {
        assert_eq!(
            by_window.get(name).copied().unwrap_or(0),
            *n,
            "window {name}"
        );
    }
    // 97 clients, at most 5 a minute each instead of 3.
    assert_eq!(answer.recorded_accepted, 97 * 3);
    assert_eq!(answer.accepted, 97 * 5);
}

#[tokio::test]
async fn follow_passes_on_events_decided_after_it_started() {
    let h = Harness::new(2).await;
    h.decide(200).await;
    h.archiver(h.config("a1")).drain().await.unwrap();
    let mut reader = Replay::new(
        h.redis.clone(),
        h.pg.clone(),
        &h.layout,
        ReplayOptions {
            filter: Filter::default(),
            follow: true,
        },
    );
    let mut seen = HashSet::new();
    for _ in 0..200 {
        seen.insert(reader.next().await.unwrap().unwrap().event.id);
    }
    let later = tokio::spawn({
        let h_redis = h.redis.clone();
        let layout = h.layout.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let limiter = limiter::RateLimiter::new(Policy::parse("3/1m").unwrap(), layout);
            for i in 0..30 {
                let to = format!("+1555000{i:04}");
                let request = limiter::SmsRequest {
                    ip: "192.0.2.1".parse().unwrap(),
                    to: &to,
                    from: None,
                    message: "later",
                    segments: 1,
                };
                limiter.decide(h_redis.next(), &request).await.unwrap();
            }
        }
    });
    for _ in 0..30 {
        let item = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("a followed event arrives")
            .unwrap()
            .unwrap();
        assert_eq!(item.event.message, "later");
        assert!(seen.insert(item.event.id));
    }
    later.await.unwrap();
}
