//! Shared by the projector's integration tests: a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379, or a Redis Cluster as `redis-cluster://…`), a fresh namespace per test
//! (tests written for several partitions use `SMSGATE_TEST_PARTITIONS` of them when set), real events decided by the limiter's script,
//! and a pure-Rust model of every projection to hold the API to.

#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool};
use limiter::model::Model;
use limiter::{Event, Layout, Outcome, Policy, RateLimiter, SmsRequest};
use projector::{Projector, ProjectorConfig, StreamId};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub use testkit::{partitions, redis, redis_url};

/// A fresh namespace over `partitions(default)` partitions.
pub fn layout(default: u16) -> Layout {
    testkit::layout(default)
}

pub fn config(consumer: &str) -> ProjectorConfig {
    ProjectorConfig {
        block: Duration::from_millis(50),
        ..ProjectorConfig::new(consumer)
    }
}

pub const NUMBERS: [&str; 4] = [
    "+14155550100",
    "+14155550101",
    "+447700900123",
    "+4915112345678",
];

/// `n` requests from a few clients, `workers` at a time, so that every window rejects some.
pub async fn random_requests(
    pool: &Pool,
    limiter: &Arc<RateLimiter>,
    n: usize,
    workers: usize,
    seed: u64,
) {
    let per_worker = n / workers;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (pool, limiter) = (pool.clone(), limiter.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed * 1000 + w as u64);
                for _ in 0..per_worker {
                    let ip: IpAddr = format!("10.0.0.{}", rng.random_range(1..=5))
                        .parse()
                        .unwrap();
                    let to = NUMBERS[rng.random_range(0..NUMBERS.len())];
                    let req = SmsRequest {
                        ip,
                        to,
                        from: None,
                        message: "hello",
                        segments: 1,
                    };
                    limiter.decide(pool.next(), &req).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Steps the projector until a step finds nothing to do.
pub async fn drain(projector: &Projector) -> usize {
    let mut applied = 0;
    loop {
        match projector.try_process_batch().await.unwrap() {
            projector::Outcome::Idle => return applied,
            projector::Outcome::Projected(r) => applied += r.applied,
        }
    }
}

/// Every entry of every partition, in stream order per partition: `(partition, id, event)`.
pub async fn stream_events(redis: &Client, layout: &Layout) -> Vec<(u16, StreamId, Event)> {
    testkit::stream_events(redis, layout)
        .await
        .into_iter()
        .map(|(p, id, event)| (p, id.parse().unwrap(), event))
        .collect()
}

/// Deletes the namespace's keys, found with KEYS on every primary of a cluster.
pub async fn drop_namespace(redis: &Client, layout: &Layout) {
    testkit::drop_namespace(redis, layout.namespace()).await;
}

pub fn rfc3339_micros(at_us: i64) -> String {
    projector::rfc3339_micros(at_us)
}

pub fn event_json(id: StreamId, e: &Event) -> Value {
    let mut json = json!({
        "id": e.id.to_string(), "stream_id": id.to_string(), "at": rfc3339_micros(e.at_us),
        "ip": e.ip.to_string(), "to": e.to, "from": e.from, "message": e.message,
        "segments": e.segments, "outcome": e.outcome.as_str(), "violated": e.violated,
        "retry_after": e.retry_after,
    });
    // The form the message is kept in travels with it (SMSGATE_STORE_MESSAGE).
    if let Some(stored) = e.stored {
        json["message_stored"] = stored.as_str().into();
    }
    json
}

/// The projections, computed plainly from the decided events.
pub struct Expected {
    pub now_us: i64,
    pub events: Vec<(u16, StreamId, Event)>,
}

fn counts<'a>(events: impl Iterator<Item = &'a Event>) -> Value {
    let (mut a, mut r) = (0u64, 0u64);
    for e in events {
        match e.outcome {
            Outcome::Accepted => a += 1,
            Outcome::Rejected | Outcome::Blocked => r += 1,
        }
    }
    json!({"accepted": a, "rejected": r})
}

impl Expected {
    fn second(&self) -> i64 {
        self.now_us.div_euclid(1_000_000)
    }
    fn minute(&self) -> i64 {
        self.now_us.div_euclid(60_000_000)
    }
    fn day(&self) -> i64 {
        self.now_us.div_euclid(86_400_000_000)
    }

    pub fn totals(&self) -> Value {
        let (s, m, d) = (self.second(), self.minute(), self.day());
        let ev = || self.events.iter().map(|(_, _, e)| e);
        json!({
            "last_minute": counts(ev().filter(|e| (s - 59..=s).contains(&e.at_us.div_euclid(1_000_000)))),
            "last_hour": counts(ev().filter(|e| (m - 59..=m).contains(&e.at_us.div_euclid(60_000_000)))),
            "today": counts(ev().filter(|e| e.at_us.div_euclid(86_400_000_000) == d)),
        })
    }

    pub fn per_minute(&self, minutes: i64) -> Value {
        let m = self.minute();
        let series: Vec<Value> = (m - minutes + 1..=m)
            .map(|minute| {
                let c = counts(
                    self.events
                        .iter()
                        .map(|(_, _, e)| e)
                        .filter(|e| e.at_us.div_euclid(60_000_000) == minute),
                );
                json!({"minute": projector::rfc3339_secs(minute * 60),
                       "accepted": c["accepted"], "rejected": c["rejected"]})
            })
            .collect();
        Value::Array(series)
    }

    pub fn top(&self) -> (Value, Value) {
        let m = self.minute();
        let mut clients: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut numbers: BTreeMap<String, u64> = BTreeMap::new();
        for (_, _, e) in &self.events {
            if e.outcome == Outcome::Rejected
                && (m - 59..=m).contains(&e.at_us.div_euclid(60_000_000))
            {
                *clients.entry((e.ip.to_string(), e.to.clone())).or_default() += 1;
                *numbers.entry(e.to.clone()).or_default() += 1;
            }
        }
        // Ties broken by the client key `ip|to` and the number, as the API documents.
        let mut c: Vec<_> = clients.into_iter().collect();
        c.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| format!("{}|{}", a.0.0, a.0.1).cmp(&format!("{}|{}", b.0.0, b.0.1)))
        });
        let mut n: Vec<_> = numbers.into_iter().collect();
        n.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        (
            Value::Array(
                c.into_iter()
                    .take(10)
                    .map(|((ip, to), r)| json!({"ip": ip, "to": to, "rejections": r}))
                    .collect(),
            ),
            Value::Array(
                n.into_iter()
                    .take(10)
                    .map(|(to, r)| json!({"to": to, "rejections": r}))
                    .collect(),
            ),
        )
    }

    /// The capped list `outcome` (None = all) keeps: newest `cap` per partition, merged newest first.
    pub fn list(&self, outcome: Option<Outcome>, cap: usize) -> Vec<Value> {
        let mut kept: Vec<(StreamId, &Event)> = Vec::new();
        let partitions = self.events.iter().map(|(p, _, _)| *p).max().unwrap_or(0);
        for p in 0..=partitions {
            let mut mine: Vec<(StreamId, &Event)> = self
                .events
                .iter()
                .filter(|(q, _, e)| *q == p && outcome.is_none_or(|o| e.outcome == o))
                .map(|(_, id, e)| (*id, e))
                .collect();
            mine.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
            mine.truncate(cap);
            kept.extend(mine);
        }
        kept.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        kept.into_iter().map(|(id, e)| event_json(id, e)).collect()
    }

    /// What each window of `policy` has used for one client, from the model's accepted times.
    pub fn usage(&self, policy: &Policy, ip: &str, to: &str) -> Value {
        let times: Vec<i64> = self
            .events
            .iter()
            .filter(|(_, _, e)| {
                e.ip.to_string() == ip && e.to == to && e.outcome == Outcome::Accepted
            })
            .map(|(_, _, e)| e.at_us)
            .collect();
        let windows: Vec<Value> = policy
            .windows()
            .iter()
            .map(|w| {
                let d = w.duration_micros();
                let counted: Vec<i64> = times.iter().copied().filter(|t| *t > self.now_us - d).collect();
                let used = counted.len() as u32;
                json!({"name": w.name, "limit": w.limit, "used": used,
                       "remaining": w.limit.saturating_sub(used),
                       "frees_in": counted.iter().min().map_or(0, |t| limiter::model::whole_seconds_up(t + d - self.now_us))})
            })
            .collect();
        json!({"ip": ip, "to": to, "windows": windows})
    }

    /// The stream agrees with the limiter's model (a sanity check of the inputs themselves).
    pub fn check_inputs(&self, policy: &Policy) {
        let mut sorted: Vec<&Event> = self.events.iter().map(|(_, _, e)| e).collect();
        sorted.sort_by_key(|e| e.at_us);
        let mut model = Model::new(policy.clone());
        for e in sorted {
            assert_eq!(model.decide(&e.client_key(), e.at_us).outcome, e.outcome);
        }
    }
}
