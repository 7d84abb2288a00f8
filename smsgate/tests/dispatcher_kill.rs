//! `smsgate dispatcher` SIGKILLed under load, then restarted: every accepted message ends in a
//! final status, and the messages handed to the provider twice are at most those that were in
//! flight (recorded `sending`, result not yet recorded) at the kill. The `log` provider's
//! outbox is what the provider received, line by line.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::delivery::{DeliveryStatus, DeliveryStore, decode_deliverable};
use limiter::{Layout, Policy, RateLimiter, SmsRequest};

const MESSAGES: usize = 2_000;

/// Two partitions, or `SMSGATE_TEST_PARTITIONS` when set.
fn partitions() -> u16 {
    testkit::partitions(2)
}

fn spawn_dispatcher(namespace: &str, outbox: &Path) -> Child {
    let port = testkit::free_port();
    let (bin, redis) = (env!("CARGO_BIN_EXE_smsgate"), testkit::redis_url());
    testkit::role_command(bin, "dispatcher", &redis, namespace, partitions(), port)
        .env("SMSGATE_PROVIDER", "log")
        .env("SMSGATE_OUTBOX", outbox)
        .env("SMSGATE_PROVIDER_TPS", "400")
        .env("SMSGATE_DELIVERY_LEASE", "3s")
        .spawn()
        .unwrap()
}

fn outbox_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_dispatcher_killed_under_load_duplicates_at_most_what_was_in_flight() {
    let pool = testkit::redis().await;
    let namespace = testkit::namespace();
    let layout = Layout::new(namespace.clone(), partitions());
    let limiter = RateLimiter::new(Policy::parse("1/1d").unwrap(), layout.clone());
    for i in 0..MESSAGES {
        let to = format!("+1415555{:04}", i % 10_000);
        let request = SmsRequest {
            ip: format!("10.8.{}.{}", i / 250, i % 250).parse().unwrap(),
            to: &to,
            from: None,
            message: "your code is 123456",
            segments: 1,
        };
        limiter.decide(pool.next(), &request).await.unwrap();
    }
    let mut ids = Vec::new();
    for p in 0..layout.partitions() {
        let entries: Vec<(String, HashMap<String, Value>)> = pool
            .next()
            .xrange(layout.stream(p), "-", "+", None)
            .await
            .unwrap();
        for (_, fields) in entries {
            let bytes = fields["e"].as_bytes().unwrap().to_vec();
            ids.push((p, decode_deliverable(&bytes).unwrap().unwrap().id));
        }
    }
    assert_eq!(ids.len(), MESSAGES);

    let dir = std::env::temp_dir().join(format!("smsgate-kill-{namespace}"));
    std::fs::create_dir_all(&dir).unwrap();
    let outbox = dir.join("outbox.log");
    let mut first = spawn_dispatcher(&namespace, &outbox);
    let deadline = Instant::now() + Duration::from_secs(60);
    while outbox_ids(&outbox).len() < MESSAGES / 4 {
        assert!(Instant::now() < deadline, "the dispatcher never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let store = DeliveryStore::new(layout.clone());
    let mut in_flight = 0;
    let mut before = HashMap::new();
    for (p, id) in &ids {
        if let Some(state) = store.load(pool.next(), *p, id).await.unwrap() {
            if state.status == DeliveryStatus::Sending {
                in_flight += 1;
            }
            *before.entry(state.status).or_insert(0) += 1;
        }
    }
    let sent_before = outbox_ids(&outbox).len();

    let mut second = spawn_dispatcher(&namespace, &outbox);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut finals;
    loop {
        finals = 0;
        for (p, id) in &ids {
            let state = store.load(pool.next(), *p, id).await.unwrap();
            if state.is_some_and(|s| s.status.is_final()) {
                finals += 1;
            }
        }
        if finals == MESSAGES || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let lines = outbox_ids(&outbox);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in &lines {
        *per_id.entry(id).or_default() += 1;
    }
    let duplicates = lines.len() - per_id.len();
    println!(
        "killed after {sent_before} sends; states at the kill {before:?}; in flight {in_flight}; \
         duplicates sent {duplicates}; final {finals}/{MESSAGES}"
    );
    assert_eq!(
        finals, MESSAGES,
        "every accepted message ends in a final status"
    );
    assert_eq!(per_id.len(), MESSAGES, "every message reached the provider");
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates but only {in_flight} in flight"
    );
    let _ = limiter::connection::drop_namespace(pool.next(), &namespace).await;
    let _ = std::fs::remove_dir_all(dir);
}
