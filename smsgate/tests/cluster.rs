//! smsgate scaled out on a real Redis Cluster (`SMSGATE_CLUSTER_URL`, e.g. from
//! `scripts/cluster.sh start`) with 16 partitions: two ingest processes at once still admit
//! exactly per client, and two projector processes at once, one of them killed mid-run, project
//! exactly what the streams hold (the survivor claims the dead one's pending entries), while two
//! archiver processes at once archive every event exactly once.
//! Without `SMSGATE_CLUSTER_URL` the tests print why they check nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use fred::interfaces::StreamsInterface;
use fred::types::Value as RedisValue;
use limiter::Event;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smsgate::Roles;
use support::TestApp;

const PARTITIONS: u16 = 16;

/// Two ingest `App`s (each its own Redis pool, as two processes would have) on one namespace.
async fn two_ingest(url: &str, namespace: &str, policy: &str) -> [TestApp; 2] {
    let spawn = || {
        TestApp::spawn(Roles::INGEST, |s| {
            s.redis_url = url.to_owned();
            s.namespace = namespace.to_owned();
            s.partitions = PARTITIONS;
            s.limits = policy.parse().unwrap();
        })
    };
    [spawn().await, spawn().await]
}

#[tokio::test]
async fn two_ingest_processes_admit_exactly_three_per_client_between_them() {
    let Some(url) = support::cluster_url() else {
        return;
    };
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let apps = two_ingest(&url, &namespace, "3/1m,10/1d").await;

    // One client, 200 requests at once, half through each process.
    let one = (0..200).map(|i| apps[i % 2].send("+14155550123"));
    let statuses: Vec<u16> = futures::future::join_all(one)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 197);

    // Fifty clients spread over the partitions (and so over every primary), 8 requests each,
    // alternating between the processes.
    let numbers: Vec<String> = (0..50)
        .map(|i| format!("+1415555{:04}", 3000 + i))
        .collect();
    let requests = (0..8).flat_map(|round| {
        let apps = &apps;
        numbers
            .iter()
            .enumerate()
            .map(move |(n, to)| apps[(round + n) % 2].send(to))
    });
    let responses = futures::future::join_all(requests).await;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut answered: HashMap<String, &'static str> = HashMap::new();
    for r in responses {
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        let outcome = match status {
            StatusCode::ACCEPTED => "accepted",
            StatusCode::TOO_MANY_REQUESTS => "rejected",
            other => panic!("unexpected {other}: {body}"),
        };
        answered.insert(body["id"].as_str().unwrap().to_owned(), outcome);
        if status == StatusCode::ACCEPTED {
            *accepted
                .entry(body["to"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(accepted.len(), 50);
    assert!(accepted.values().all(|n| *n == 3), "{accepted:?}");

    // Every answer is on its partition's stream with the outcome the client was told.
    let events = apps[0].events().await;
    assert_eq!(events.len(), 200 + 400);
    let on_stream: HashMap<String, &str> = events
        .iter()
        .map(|(_, e)| (e.id.to_string(), e.outcome.as_str()))
        .collect();
    for (id, outcome) in &answered {
        assert_eq!(on_stream.get(id), Some(outcome), "event {id}");
    }
    let layout = apps[0].layout();
    let used: std::collections::HashSet<u16> = events
        .iter()
        .map(|(_, e)| layout.partition_of(&e.client_key()))
        .collect();
    assert!(used.len() > 8, "clients spread over partitions: {used:?}");
    let [a, b] = apps;
    b.cleanup().await;
    a.cleanup().await;
}

const POLICY: &str = "2/1s,4/5s";

fn spawn_projector(url: &str, namespace: &str, port: u16) -> Child {
    let bin = env!("CARGO_BIN_EXE_smsgate");
    testkit::role_command(bin, "projector", url, namespace, PARTITIONS, port)
        .env("SMSGATE_LIMITS", POLICY)
        .spawn()
        .unwrap()
}

fn spawn_archiver(url: &str, namespace: &str, database_url: &str, port: u16) -> Child {
    let bin = env!("CARGO_BIN_EXE_smsgate");
    testkit::role_command(bin, "archiver", url, namespace, PARTITIONS, port)
        .env("DATABASE_URL", database_url)
        .env("SMSGATE_ARCHIVE_INTERVAL", "1s")
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

fn projected(stats: &Value) -> u64 {
    let today = &stats["totals"]["today"];
    today["accepted"].as_u64().unwrap_or(0) + today["rejected"].as_u64().unwrap_or(0)
}

/// Entries of `stream` the `projector` group has delivered but nobody acknowledged.
async fn pending(redis: &fred::clients::Client, stream: &str) -> u64 {
    let summary: RedisValue = redis.xpending(stream, projector::GROUP, ()).await.unwrap();
    match summary {
        RedisValue::Array(parts) => parts.first().and_then(RedisValue::as_u64).unwrap_or(0),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_one_killed_and_two_archivers_at_once_handle_exactly_what_two_ingest_processes_decided()
 {
    let Some(url) = support::cluster_url() else {
        return;
    };
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let apps = std::sync::Arc::new(two_ingest(&url, &namespace, POLICY).await);
    let http = reqwest::Client::new();
    let ports = [support::free_port(), support::free_port()];
    let mut doomed = spawn_projector(&url, &namespace, ports[0]);
    let mut survivor = spawn_projector(&url, &namespace, ports[1]);

    // 4 workers × 500 requests over 40 numbers, alternating between the ingest processes.
    let traffic = {
        let apps = apps.clone();
        tokio::spawn(async move {
            let workers: Vec<_> = (0..4u64)
                .map(|w| {
                    let apps = apps.clone();
                    tokio::spawn(async move {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(w);
                        let mut answered = 0;
                        for i in 0..500 {
                            let to = format!("+1415555{:04}", 4000 + rng.random_range(0..40));
                            let status = apps[i % 2].send(&to).await.status();
                            assert!(
                                status == StatusCode::ACCEPTED
                                    || status == StatusCode::TOO_MANY_REQUESTS,
                                "{status}"
                            );
                            answered += 1;
                        }
                        answered
                    })
                })
                .collect();
            let mut answered = 0;
            for w in workers {
                answered += w.await.unwrap();
            }
            answered
        })
    };
    // Kill one projector once the pair has projected part of the traffic.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if stats(&http, ports[1])
            .await
            .is_some_and(|s| projected(&s) > 400)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the projectors never projected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().unwrap(); // SIGKILL: whatever it had read and not applied stays pending
    doomed.wait().unwrap();
    assert_eq!(traffic.await.unwrap(), 2_000);

    let events = apps[0].events().await;
    assert_eq!(events.len(), 2_000);
    // The archivers start once the streams are read here: archiving trims them.
    let database_url = apps[0].settings.database_url.clone();
    let mut archivers = [
        spawn_archiver(&url, &namespace, &database_url, support::free_port()),
        spawn_archiver(&url, &namespace, &database_url, support::free_port()),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        if let Some(s) = stats(&http, ports[1]).await
            && projected(&s) >= 2_000
        {
            // Give a double count (a claimed entry applied twice) the chance to show.
            tokio::time::sleep(Duration::from_secs(6)).await;
            break stats(&http, ports[1]).await.unwrap();
        }
        assert!(Instant::now() < deadline, "the survivor never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    survivor.kill().unwrap();
    survivor.wait().unwrap();

    // Nothing is left pending on any partition: the dead consumer's entries were claimed.
    let pool = apps[0].redis().await;
    for stream in apps[0].layout().streams() {
        assert_eq!(pending(pool.next(), &stream).await, 0, "{stream}");
    }
    // Both archivers ran at once: every event archived, none twice (the id is the key, so
    // the row count and the id set say it all).
    let expected: std::collections::HashSet<String> =
        events.iter().map(|(_, e)| e.id.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let archived = loop {
        let rows: Vec<uuid::Uuid> = match archiver::connect_postgres(&database_url).await {
            Ok(pg) => {
                let rows = sqlx::query_scalar("SELECT id FROM sms_events")
                    .fetch_all(&pg)
                    .await
                    .unwrap_or_default();
                pg.close().await;
                rows
            }
            Err(_) => Vec::new(),
        };
        if rows.len() >= expected.len() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "archived {} of {}",
            rows.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for archiver in &mut archivers {
        archiver.kill().unwrap();
        archiver.wait().unwrap();
    }
    assert_eq!(archived.len(), expected.len());
    let archived: std::collections::HashSet<String> =
        archived.iter().map(ToString::to_string).collect();
    assert_eq!(archived, expected);
    assert_projections_equal(&s, &events.into_iter().map(|(_, e)| e).collect::<Vec<_>>());
    let apps = std::sync::Arc::into_inner(apps).unwrap();
    let [a, b] = apps;
    b.cleanup().await;
    a.cleanup().await;
}

/// The projector's `/api/stats` equals a plain count of `events`.
fn assert_projections_equal(s: &Value, events: &[Event]) {
    let events: Vec<&Event> = events.iter().collect();
    support::projections::assert_totals_and_series_equal(s, &events);
    let numbers = support::projections::rejections_by_number_last_hour(s, &events);
    let top = s["top_numbers"].as_array().unwrap();
    let expected: Vec<Value> = numbers
        .into_iter()
        .take(top.len().max(1))
        .map(|(to, r)| json!({"to": to, "rejections": r}))
        .collect();
    assert!(!top.is_empty());
    assert_eq!(top, &expected);
}
