//! The twilio provider against Twilio's own published contract: Prism serves Twilio's OpenAPI
//! document and refuses (422) any request that breaks it; a fault proxy in front of it injects
//! 500s, 429s and 400s, and an unreachable port stands for a provider that is down.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use dispatcher::Dispatcher;
use limiter::delivery::{DeliveryStatus, MessageState};

async fn states(
    dispatcher: &Dispatcher,
    pool: &fred::clients::Pool,
    layout: &limiter::Layout,
) -> Vec<MessageState> {
    let mut out = Vec::new();
    for partition in 0..layout.partitions() {
        for d in deliverables(pool, layout, partition).await {
            out.push(
                dispatcher
                    .store()
                    .load(pool.next(), partition, &d.id)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    out
}

#[tokio::test]
async fn exactly_the_accepted_messages_reach_twilio_once_each_with_their_to_from_and_body() {
    let prism = Prism::start().await;
    let proxy = FaultProxy::start(&prism.url).await;
    let pool = redis().await;
    let layout = layout();
    let accepted = accepted_and_rejected(&pool, &layout, 1_000, None).await;
    assert_eq!(accepted.len(), 1_000);
    let dispatcher = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        twilio(&proxy.url),
        None,
        fast_config(),
    );
    deliver_stream(&dispatcher, &pool, &layout, 100).await;

    let seen = proxy.seen();
    assert_eq!(
        seen.len(),
        1_000,
        "one request per accepted message, none for the rejected"
    );
    let bad: Vec<_> = seen.iter().filter(|s| s.answered != 201).collect();
    assert!(
        bad.is_empty(),
        "Prism refused requests as breaking Twilio's spec: {:?}",
        &bad[..bad.len().min(3)]
    );
    let mut expected: HashMap<(String, String), usize> = HashMap::new();
    for pair in accepted {
        *expected.entry(pair).or_default() += 1;
    }
    let mut got: HashMap<(String, String), usize> = HashMap::new();
    for s in &seen {
        assert_eq!(s.param("From"), Some(FROM));
        let callback = s.param("StatusCallback").unwrap();
        assert!(
            callback.contains("/api/providers/twilio/status?id="),
            "{callback}"
        );
        let key = (
            s.param("To").unwrap().to_owned(),
            s.param("Body").unwrap().to_owned(),
        );
        *got.entry(key).or_default() += 1;
    }
    assert_eq!(got, expected);
    for state in states(&dispatcher, &pool, &layout).await {
        assert_eq!(state.status, DeliveryStatus::Sent, "{state:?}");
        assert_eq!(state.attempts, 1);
        assert!(
            state
                .provider_id
                .as_deref()
                .is_some_and(|id| id.starts_with("SM"))
        );
        assert_eq!(state.body, None, "the body leaves Redis once handed over");
    }
}

#[tokio::test]
async fn a_provider_failing_with_500_for_30_seconds_loses_nothing_and_backs_off() {
    let prism = Prism::start().await;
    let proxy = FaultProxy::start(&prism.url).await;
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 20, None).await;
    let config = dispatcher::DispatcherConfig {
        retry_min: Duration::from_secs(1),
        retry_max: Duration::from_secs(16),
        ..fast_config()
    };
    let dispatcher = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        twilio(&proxy.url),
        None,
        config,
    );
    proxy.fail(Fault::ServerError, Some(Duration::from_secs(30)));
    deliver_stream(&dispatcher, &pool, &layout, 10).await;

    let all_sent = eventually(Duration::from_secs(90), || async {
        dispatcher.retry_step().await.unwrap();
        states(&dispatcher, &pool, &layout)
            .await
            .iter()
            .all(|s| s.status == DeliveryStatus::Sent)
    })
    .await;
    assert!(all_sent, "every message is sent once the provider is back");
    let seen = proxy.seen();
    let passed = seen.iter().filter(|s| s.answered == 201).count();
    assert_eq!(
        passed, 20,
        "each message reached Prism exactly once after the outage"
    );
    for state in states(&dispatcher, &pool, &layout).await {
        // 1 s, 2 s, 4 s, 8 s, 16 s: the sixth attempt is the first after 30 s.
        assert!(state.attempts >= 5, "{} attempts", state.attempts);
        let sending: Vec<i64> = state
            .history
            .iter()
            .filter(|h| h.status == DeliveryStatus::Sending)
            .map(|h| {
                chrono::DateTime::parse_from_rfc3339(&h.at)
                    .unwrap()
                    .timestamp_micros()
            })
            .collect();
        assert_eq!(sending.len() as u32, state.attempts);
        let gaps: Vec<i64> = sending.windows(2).map(|w| w[1] - w[0]).collect();
        for pair in gaps.windows(2) {
            assert!(
                pair[1] > pair[0],
                "the waits between attempts grow: {gaps:?}"
            );
        }
        let retries = state
            .history
            .iter()
            .filter(|h| h.status == DeliveryStatus::Queued)
            .count();
        assert_eq!(
            retries as u32, state.attempts,
            "queued at first and after each failure"
        );
        let detail = state.history.iter().find_map(|h| h.detail.clone()).unwrap();
        assert!(detail.contains("HTTP 500"), "{detail}");
    }
}

#[tokio::test]
async fn throttling_is_retried_and_a_refusal_fails_at_once() {
    let prism = Prism::start().await;
    let proxy = FaultProxy::start(&prism.url).await;
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 5, None).await;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        twilio(&proxy.url),
        None,
        fast_config(),
    );
    proxy.fail(Fault::Throttle, Some(Duration::from_secs(2)));
    deliver_stream(&dispatcher, &pool, &layout, 10).await;
    let sent = eventually(Duration::from_secs(30), || async {
        dispatcher.retry_step().await.unwrap();
        states(&dispatcher, &pool, &layout)
            .await
            .iter()
            .all(|s| s.status == DeliveryStatus::Sent)
    })
    .await;
    assert!(sent);
    for s in states(&dispatcher, &pool, &layout).await {
        assert!(s.attempts >= 2);
        assert!(
            s.history
                .iter()
                .any(|h| h.detail.as_deref().is_some_and(|d| d.contains("20429")))
        );
    }

    let layout = common::layout();
    accepted_and_rejected(&pool, &layout, 5, None).await;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        twilio(&proxy.url),
        None,
        fast_config(),
    );
    proxy.fail(Fault::Refuse, None);
    deliver_stream(&dispatcher, &pool, &layout, 10).await;
    for s in states(&dispatcher, &pool, &layout).await {
        assert_eq!(
            s.status,
            DeliveryStatus::Failed,
            "a 400-class answer is final at once"
        );
        assert_eq!(s.attempts, 1);
        let detail = s.history.last().unwrap().detail.clone().unwrap();
        assert!(detail.contains("21211"), "{detail}");
    }
    assert_eq!(
        dispatcher.retry_step().await.unwrap(),
        dispatcher::StepOutcome::Idle
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_until_the_ttl_then_expired() {
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 3, None).await;
    let config = dispatcher::DispatcherConfig {
        ttl: Duration::from_secs(4),
        ..fast_config()
    };
    let closed = format!("http://127.0.0.1:{}", free_port());
    let dispatcher = Dispatcher::new(pool.clone(), layout.clone(), twilio(&closed), None, config);
    deliver_stream(&dispatcher, &pool, &layout, 10).await;
    let expired = eventually(Duration::from_secs(20), || async {
        dispatcher.retry_step().await.unwrap();
        states(&dispatcher, &pool, &layout)
            .await
            .iter()
            .all(|s| s.status == DeliveryStatus::Expired)
    })
    .await;
    assert!(expired);
    for s in states(&dispatcher, &pool, &layout).await {
        assert!(s.attempts >= 2, "retried before expiring: {s:?}");
        assert!(s.history.iter().any(|h| {
            h.detail
                .as_deref()
                .is_some_and(|d| d.contains("unreachable"))
        }));
    }
}
