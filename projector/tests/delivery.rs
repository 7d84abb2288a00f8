//! Delivery status events on the stream: the projector counts them per minute and status
//! (`GET /api/stats/delivery`), never as decisions, and never dead-letters them.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fred::interfaces::{SortedSetsInterface, StreamsInterface};
use limiter::delivery::{
    Admission, Change, Deliverable, DeliveryStatus, DeliveryStore, Schedule, StatusEvent, now_us,
};
use limiter::{Policy, RateLimiter, SmsRequest};
use projector::Projector;

#[tokio::test]
async fn status_changes_are_counted_per_status_and_not_as_decisions() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = RateLimiter::new(Policy::parse("5/1m").unwrap(), layout.clone());
    let store = DeliveryStore::new(layout.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        let to = format!("+1415555010{i}");
        let request = SmsRequest {
            ip: "10.0.0.1".parse().unwrap(),
            to: &to,
            from: None,
            message: "hi",
            segments: 1,
        };
        let decision = limiter.decide(pool.next(), &request).await.unwrap();
        let message = Deliverable {
            id: decision.id,
            at_us: decision.at_us,
            to: to.clone(),
            from: None,
            message: "hi".into(),
            stored: None,
            segments: 1,
            status_callback: None,
            api_client: None,
        };
        let admission = Admission {
            message: &message,
            body: &message.message,
            provider: "log",
            deadline_us: now_us() + 60_000_000,
            due_ms: now_us() / 1000,
        };
        assert!(
            store
                .admit(pool.next(), decision.partition, &admission)
                .await
                .unwrap()
        );
        for (status, attempt) in [(DeliveryStatus::Sending, 1), (DeliveryStatus::Sent, 1)] {
            let mut event = StatusEvent::new(decision.id, &to, status, "log");
            event.attempt = attempt;
            // The provider calls took 3 ms, 30 ms and 300 ms.
            if status == DeliveryStatus::Sent {
                event.latency_us = Some(3_000 * 10u64.pow(i));
            }
            let change = Change {
                event,
                schedule: Schedule::Keep,
            };
            assert!(
                store
                    .change(pool.next(), decision.partition, &change)
                    .await
                    .unwrap()
            );
        }
        ids.push((decision.partition, decision.id, to));
    }
    let (partition, id, to) = &ids[0];
    let change = Change {
        event: StatusEvent::new(*id, to, DeliveryStatus::Delivered, "log"),
        schedule: Schedule::Unschedule,
    };
    assert!(
        store
            .change(pool.next(), *partition, &change)
            .await
            .unwrap()
    );
    // A final status does not change again.
    let again = Change {
        event: StatusEvent::new(*id, to, DeliveryStatus::Failed, "log"),
        schedule: Schedule::Unschedule,
    };
    assert!(!store.change(pool.next(), *partition, &again).await.unwrap());
    let length: u64 = pool.next().xlen(layout.stream(0)).await.unwrap();
    assert_eq!(length, 3 + 6 + 1, "3 decisions, 7 status events");

    let projector = Projector::new(
        pool.clone(),
        layout.clone(),
        Policy::parse("5/1m").unwrap(),
        config("p1"),
    );
    drain(&projector).await;
    let dead: u64 = pool.next().xlen(layout.dead_letters(0)).await.unwrap();
    assert_eq!(dead, 0, "status events are understood, not dead letters");
    let totals = projector::read::totals(pool.next(), &layout, now_us())
        .await
        .unwrap();
    assert_eq!(
        totals.last_hour.accepted, 3,
        "status events are not decisions"
    );
    let per_minute = projector::read::delivery_per_minute(pool.next(), &layout, now_us(), 5)
        .await
        .unwrap();
    let mut sums = [0u64; 7];
    for (_, counts) in per_minute {
        for i in 0..7 {
            sums[i] += counts[i];
        }
    }
    let at = |s: DeliveryStatus| sums[DeliveryStatus::ALL.iter().position(|x| *x == s).unwrap()];
    assert_eq!(at(DeliveryStatus::Sending), 3);
    assert_eq!(at(DeliveryStatus::Sent), 3);
    assert_eq!(at(DeliveryStatus::Delivered), 1);
    assert_eq!(at(DeliveryStatus::Failed), 0);
    let latency = projector::read::delivery_latency(pool.next(), &layout, now_us(), 5)
        .await
        .unwrap();
    let calls = projector::LatencyJson::from_histogram(&latency);
    assert_eq!(calls.calls, 3, "one latency per provider call");
    assert_eq!((calls.p50, calls.p99), (Some(0.05), Some(0.5)));

    // The dispatcher's backlog: nothing before its group exists; once it does (created at the
    // start of the stream, as a first dispatcher would), every entry it has not settled.
    let none = projector::read::delivery_backlog(pool.next(), &layout)
        .await
        .unwrap();
    assert_eq!(none.entries, 0);
    let _: () = pool
        .next()
        .xgroup_create(layout.stream(0), "dispatcher", "0", false)
        .await
        .unwrap();
    let backlog = projector::read::delivery_backlog(pool.next(), &layout)
        .await
        .unwrap();
    assert_eq!(
        backlog.entries, length,
        "no entry settled by the dispatcher yet"
    );
    assert!(backlog.oldest_seconds >= 0.0);
    let scheduled: u64 = pool
        .next()
        .zcard(DeliveryStore::new(layout.clone()).schedule_key(0))
        .await
        .unwrap();
    assert_eq!(backlog.scheduled, scheduled);
    drop_namespace(pool.next(), &layout).await;
}
