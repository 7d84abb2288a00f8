//! The `smsgate projector` process killed with SIGKILL in the middle of a run and restarted:
//! its projections still equal, exactly, what a plain count of the decided events gives.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter::{Event, Layout, Policy, RateLimiter, SmsRequest};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const POLICY: &str = "2/1s,4/5s";

/// Two partitions, or `SMSGATE_TEST_PARTITIONS` when set (e.g. 16 on a Redis Cluster).
fn partitions() -> u16 {
    testkit::partitions(2)
}

fn spawn_projector(namespace: &str, port: u16) -> Child {
    let (bin, redis) = (env!("CARGO_BIN_EXE_smsgate"), testkit::redis_url());
    testkit::role_command(bin, "projector", &redis, namespace, partitions(), port)
        .env("SMSGATE_LIMITS", POLICY)
        .spawn()
        .unwrap()
}

async fn stats(http: &reqwest::Client, port: u16) -> Option<Value> {
    let response = http
        .get(format!("http://127.0.0.1:{port}/api/stats?minutes=10"))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_run_and_restarted_still_equals_the_model_exactly() {
    let pool = testkit::redis().await;
    let namespace = testkit::namespace();
    let layout = Layout::new(namespace.clone(), partitions());
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut child = spawn_projector(&namespace, port);

    // Traffic runs throughout; the projector is killed and restarted in the middle of it.
    let traffic = {
        let (pool, limiter) = (pool.clone(), limiter.clone());
        tokio::spawn(async move {
            let workers: Vec<_> = (0..4u64)
                .map(|w| {
                    let (pool, limiter) = (pool.clone(), limiter.clone());
                    tokio::spawn(async move {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(w);
                        for _ in 0..1_000 {
                            let ip = format!("10.0.0.{}", rng.random_range(1..=6))
                                .parse()
                                .unwrap();
                            let to = ["+14155550100", "+14155550101", "+447700900123"]
                                [rng.random_range(0..3)];
                            let req = SmsRequest {
                                ip,
                                to,
                                from: None,
                                message: "hi",
                                segments: 1,
                            };
                            limiter.decide(pool.next(), &req).await.unwrap();
                            if rng.random_bool(0.02) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.unwrap();
            }
        })
    };
    // Kill it once it has projected part of the traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = stats(&http, port).await {
            let today = &s["totals"]["today"];
            if today["accepted"].as_u64().unwrap() + today["rejected"].as_u64().unwrap() > 500 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the projector never projected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = spawn_projector(&namespace, port);
    traffic.await.unwrap();

    // The restarted consumer has a new name: it claims the dead one's entries after claim_idle.
    let events = testkit::stream_events(pool.next(), &layout).await;
    assert_eq!(events.len(), 4_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        if let Some(s) = stats(&http, port).await {
            let today = &s["totals"]["today"];
            if today["accepted"].as_u64().unwrap() + today["rejected"].as_u64().unwrap() >= 4_000 {
                // Give any double count a chance to show before comparing.
                tokio::time::sleep(Duration::from_secs(6)).await;
                break stats(&http, port).await.unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the restarted projector never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let events: Vec<&Event> = events.iter().map(|(_, _, e)| e).collect();
    support::projections::assert_totals_and_series_equal(&s, &events);
    let numbers: Vec<Value> = support::projections::rejections_by_number_last_hour(&s, &events)
        .into_iter()
        .map(|(to, r)| json!({"to": to, "rejections": r}))
        .collect();
    assert_eq!(s["top_numbers"], Value::Array(numbers));
    support::drop_namespace(pool.next(), &namespace).await;
}
