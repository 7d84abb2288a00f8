//! `SMSGATE_STORE_MESSAGE` at the decision script, against a real Redis: what the event on the
//! stream keeps of a body, where the body to deliver waits (and for how long), and that a
//! refused request never leaves more than a short redacted preview, whatever the setting.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use fred::interfaces::{ClientLike, KeysInterface};
use limiter::{
    Layout, Outcome, Policy, RateLimiter, SmsRequest, StoreMessage, StoredForm, privacy,
};
use support::{drop_namespace, redis, stream_events};

const CODE: &str = "Your code is 493817";

fn limiter(store: StoreMessage) -> RateLimiter {
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    RateLimiter::new(Policy::parse("1/1m").unwrap(), Layout::new(namespace, 1))
        .with_privacy(store, Duration::from_secs(3_600))
}

fn request(message: &'static str) -> SmsRequest<'static> {
    SmsRequest {
        ip: "198.51.100.1".parse().unwrap(),
        to: "+14155550123",
        from: None,
        message,
        segments: 1,
    }
}

/// Every key under the namespace with all it holds as text (values, fields, members, stream
/// entries read back raw, never a compressed DUMP): what Redis holds of the namespace.
async fn everything(redis: &fred::clients::Client, layout: &Layout) -> Vec<(String, String)> {
    use fred::types::{ClusterHash, CustomCommand, Value};
    let command =
        |name: &'static str| CustomCommand::new_static(name, ClusterHash::FirstKey, false);
    let keys = limiter::connection::namespace_keys(redis, layout.namespace())
        .await
        .unwrap();
    let mut found = Vec::new();
    for key in keys {
        let kind: String = redis.r#type(key.as_str()).await.unwrap();
        let args: Vec<String> = match kind.as_str() {
            "string" => vec!["GET".into(), key.clone()],
            "hash" => vec!["HGETALL".into(), key.clone()],
            "list" => vec!["LRANGE".into(), key.clone(), "0".into(), "-1".into()],
            "zset" => vec!["ZRANGE".into(), key.clone(), "0".into(), "-1".into()],
            "stream" => vec!["XRANGE".into(), key.clone(), "-".into(), "+".into()],
            other => panic!("{key} is a {other}"),
        };
        let name: &'static str = Box::leak(args[0].clone().into_boxed_str());
        let value: Value = redis
            .custom(command(name), args[1..].to_vec())
            .await
            .unwrap();
        found.push((key, format!("{value:?}") + &flatten(&value)));
    }
    found
}

fn flatten(value: &fred::types::Value) -> String {
    use fred::types::Value;
    match value {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::String(s) => s.to_string(),
        Value::Array(values) => values.iter().map(flatten).collect::<Vec<_>>().join("\n"),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| format!("{k:?}={}", flatten(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn redacted_by_default_the_event_keeps_bullets_and_the_body_waits_apart() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(StoreMessage::default());
    let accepted = limiter.decide(redis, &request(CODE)).await.unwrap();
    assert_eq!(accepted.outcome, Outcome::Accepted);
    let rejected = limiter.decide(redis, &request(CODE)).await.unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);

    let events = stream_events(redis, limiter.layout()).await;
    assert_eq!(events[0].1.message, "Your code is ••••••");
    assert_eq!(events[0].1.stored, Some(StoredForm::Redacted));
    assert_eq!(events[1].1.message, "Your code is ••••••");
    assert_eq!(events[1].1.stored, Some(StoredForm::Preview));

    // The body to deliver, and only the accepted one's, waits under its own key with a TTL.
    let layout = limiter.layout();
    let body: Option<String> = redis.get(layout.body(0, &accepted.id)).await.unwrap();
    assert_eq!(body.as_deref(), Some(CODE));
    let ttl: i64 = redis.pttl(layout.body(0, &accepted.id)).await.unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "ttl {ttl} ms");
    let refused: bool = redis.exists(layout.body(0, &rejected.id)).await.unwrap();
    assert!(!refused, "a rejected request leaves no body behind");

    // Apart from that key, Redis holds the code nowhere (stream, quota, …).
    let holders: Vec<String> = everything(redis, layout)
        .await
        .into_iter()
        .filter(|(_, text)| text.contains("493817"))
        .map(|(key, _)| key)
        .collect();
    assert_eq!(holders, vec![layout.body(0, &accepted.id)]);
    drop_namespace(redis, layout).await;
}

#[tokio::test]
async fn full_keeps_the_body_on_the_event_and_nothing_apart() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(StoreMessage::Full);
    let accepted = limiter.decide(redis, &request(CODE)).await.unwrap();
    limiter.decide(redis, &request(CODE)).await.unwrap();
    let events = stream_events(redis, limiter.layout()).await;
    assert_eq!(events[0].1.message, CODE);
    assert_eq!(events[0].1.stored, Some(StoredForm::Full));
    // Refused: never more than the redacted preview, even under `full`.
    assert_eq!(events[1].1.message, "Your code is ••••••");
    assert_eq!(events[1].1.stored, Some(StoredForm::Preview));
    let apart: bool = redis
        .exists(limiter.layout().body(0, &accepted.id))
        .await
        .unwrap();
    assert!(!apart, "the event carries the body; no second copy");
    drop_namespace(redis, limiter.layout()).await;
}

#[tokio::test]
async fn none_keeps_no_body_but_the_segments() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(StoreMessage::None);
    let mut long = request(CODE);
    long.segments = 3;
    let accepted = limiter.decide(redis, &long).await.unwrap();
    limiter.decide(redis, &long).await.unwrap();
    let events = stream_events(redis, limiter.layout()).await;
    for (_, event) in &events {
        assert_eq!(event.message, "");
        assert_eq!(event.stored, Some(StoredForm::None));
        assert_eq!(event.segments, 3);
    }
    let body: Option<String> = redis
        .get(limiter.layout().body(0, &accepted.id))
        .await
        .unwrap();
    assert_eq!(body.as_deref(), Some(CODE), "delivery still gets the body");
    drop_namespace(redis, limiter.layout()).await;
}

#[tokio::test]
async fn a_rejected_1600_character_body_costs_the_stream_a_bounded_preview() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(StoreMessage::Full);
    let body: &'static str = Box::leak("9".repeat(1_600).into_boxed_str());
    limiter.decide(redis, &request(body)).await.unwrap();
    let rejected = limiter.decide(redis, &request(body)).await.unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    let events = stream_events(redis, limiter.layout()).await;
    let kept = &events[1].1.message;
    assert_eq!(kept.chars().count(), privacy::PREVIEW_CHARS + 1);
    assert!(kept.chars().all(|c| c == '•' || c == '…'), "{kept}");
    drop_namespace(redis, limiter.layout()).await;
}
