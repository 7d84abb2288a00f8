//! Helpers shared by the limiter's Redis suites: a pool on `REDIS_URL`, requests, the stream
//! read back, and namespace clean-up.

#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::StreamsInterface;
use fred::types::streams::XReadResponse;
use limiter::{Event, Layout, SmsRequest, codec};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn redis() -> Pool {
    let pool = limiter::connection::connect(&redis_url(), 4, Duration::from_secs(5))
        .await
        .expect("redis url");
    assert!(
        limiter::connection::is_up(&pool),
        "Redis is not reachable at {}",
        redis_url()
    );
    pool
}

/// `default`, or `SMSGATE_TEST_PARTITIONS` for a test written for several partitions.
pub fn partitions(default: u16) -> u16 {
    let configured = std::env::var("SMSGATE_TEST_PARTITIONS").ok();
    match configured.and_then(|p| p.parse().ok()) {
        Some(n) if default > 1 => n,
        _ => default,
    }
}

pub fn request(ip: &str, to: &'static str) -> SmsRequest<'static> {
    SmsRequest {
        ip: ip.parse().unwrap(),
        to,
        from: None,
        message: "hello",
        segments: 1,
    }
}

/// Every event on every partition's stream, in stream order per partition.
pub async fn stream_events(redis: &Client, layout: &Layout) -> Vec<(String, Event)> {
    let mut all = Vec::new();
    for stream in layout.streams() {
        let mut after = "0-0".to_string();
        loop {
            let page: XReadResponse<String, String, String, Vec<u8>> = redis
                .xread_map(Some(10_000), None, stream.as_str(), after.as_str())
                .await
                .unwrap_or_default();
            let Some(entries) = page.into_values().next() else {
                break;
            };
            if entries.is_empty() {
                break;
            }
            for (id, fields) in entries {
                let event = codec::decode(&fields[codec::EVENT_FIELD]).expect("decodable event");
                after = id.clone();
                all.push((id, event));
            }
        }
    }
    all
}

/// Deletes the namespace's keys, found with KEYS on every primary of a cluster.
pub async fn drop_namespace(redis: &Client, layout: &Layout) {
    let _ = limiter::connection::drop_namespace(redis, layout.namespace()).await;
}
