//! The decision script against a real Redis (`REDIS_URL`, default 127.0.0.1:6379, or a Redis
//! Cluster as `redis-cluster://…`), held to the pure-Rust model: atomicity under concurrency,
//! exact rolling windows and Retry-After, and one decodable event on the stream for every
//! decision. Tests written for several partitions use `SMSGATE_TEST_PARTITIONS` of them when set.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::interfaces::{ClientLike, LuaInterface};
use limiter::model::Model;
use limiter::{Event, Layout, Outcome, Policy, RateLimiter, SmsRequest};
use rand::{Rng, SeedableRng};
use support::{drop_namespace, redis, request, stream_events};

fn limiter(policy: &str, partitions: u16) -> RateLimiter {
    let partitions = support::partitions(partitions);
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    RateLimiter::new(
        Policy::parse(policy).unwrap(),
        Layout::new(namespace, partitions),
    )
}

/// `limiter` deciding under group commit: concurrent decisions of a partition share calls.
fn grouped(limiter: RateLimiter) -> RateLimiter {
    limiter.with_group_commit()
}

#[tokio::test]
async fn two_hundred_concurrent_requests_for_one_client_admit_exactly_three() {
    two_hundred_concurrent_requests_for_one_client(limiter("3/1m,10/1d", 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_for_one_client_admit_exactly_three_in_shared_calls() {
    let limiter =
        two_hundred_concurrent_requests_for_one_client(grouped(limiter("3/1m,10/1d", 1))).await;
    let (calls, decided) = limiter.group_commit_totals().unwrap();
    assert_eq!(decided, 200);
    // 200 requests at once on one partition, at most two calls under way: most must share.
    assert!(calls < 100, "{calls} calls for 200 requests");
}

async fn two_hundred_concurrent_requests_for_one_client(limiter: RateLimiter) -> Arc<RateLimiter> {
    let pool = redis().await;
    let limiter = Arc::new(limiter);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (pool, limiter) = (pool.clone(), limiter.clone());
            tokio::spawn(async move {
                let client = &pool.clients()[i % pool.clients().len()];
                limiter
                    .decide(client, &request("198.51.100.1", "+14155550123"))
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let decision = task.await.unwrap().expect("decided");
        if decision.outcome == Outcome::Accepted {
            accepted += 1;
        } else {
            assert!(decision.retry_after >= 1);
        }
    }
    assert_eq!(accepted, 3);
    let events = stream_events(pool.next(), limiter.layout()).await;
    assert_eq!(events.len(), 200, "every decision is on the stream");
    let on_stream = events
        .iter()
        .filter(|(_, e)| e.outcome == Outcome::Accepted)
        .count();
    assert_eq!(on_stream, 3);
    drop_namespace(pool.next(), limiter.layout()).await;
    limiter
}

#[tokio::test]
async fn fifty_clients_at_once_get_exactly_three_each() {
    fifty_clients_at_once(limiter("3/1m,10/1d", 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_at_once_get_exactly_three_each_in_shared_calls() {
    fifty_clients_at_once(grouped(limiter("3/1m,10/1d", 4))).await;
}

async fn fifty_clients_at_once(limiter: RateLimiter) {
    let pool = redis().await;
    let limiter = Arc::new(limiter);
    let numbers: Vec<&'static str> = (0..50)
        .map(|i| &*Box::leak(format!("+1415555{:04}", 1000 + i).into_boxed_str()))
        .collect();
    let mut tasks = Vec::new();
    for round in 0..8 {
        for (n, to) in numbers.iter().enumerate() {
            let (pool, limiter, to) = (pool.clone(), limiter.clone(), *to);
            tasks.push(tokio::spawn(async move {
                let client = &pool.clients()[(round + n) % pool.clients().len()];
                let d = limiter
                    .decide(client, &request("203.0.113.9", to))
                    .await
                    .unwrap();
                (to, d.outcome)
            }));
        }
    }
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for task in tasks {
        let (to, outcome) = task.await.unwrap();
        *accepted.entry(to).or_default() += usize::from(outcome == Outcome::Accepted);
    }
    assert_eq!(accepted.len(), 50);
    assert!(accepted.values().all(|n| *n == 3), "{accepted:?}");
    drop_namespace(pool.next(), limiter.layout()).await;
}

/// Replays the stream through the model: every recorded outcome, violated window and
/// Retry-After must be what the model decides at the recorded Redis time, in stream order.
fn assert_stream_matches_model(policy: &str, events: &[(String, Event)]) -> usize {
    let mut model = Model::new(Policy::parse(policy).unwrap());
    let mut rejected = 0;
    for (id, event) in events {
        let expected = model.decide(&event.client_key(), event.at_us);
        assert_eq!(
            event.outcome, expected.outcome,
            "outcome of {id} ({event:?})"
        );
        assert_eq!(
            event.violated, expected.violated,
            "violated windows of {id}"
        );
        assert_eq!(
            event.retry_after, expected.retry_after,
            "retry-after of {id}"
        );
        rejected += usize::from(event.outcome == Outcome::Rejected);
    }
    rejected
}

const RANDOM_POLICY: &str = "2/1s,5/3s,9/1m";

#[tokio::test]
async fn ten_thousand_random_concurrent_requests_match_the_model_exactly() {
    random_concurrent_requests(limiter(RANDOM_POLICY, 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_concurrent_requests_in_shared_calls_match_the_model_exactly() {
    random_concurrent_requests(grouped(limiter(RANDOM_POLICY, 4))).await;
}

async fn random_concurrent_requests(limiter: RateLimiter) {
    const POLICY: &str = RANDOM_POLICY;
    let pool = redis().await;
    let limiter = Arc::new(limiter);
    let workers: Vec<_> = (0..32u64)
        .map(|worker| {
            let (pool, limiter) = (pool.clone(), limiter.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
                let client = &pool.clients()[worker as usize % pool.clients().len()];
                for _ in 0..320 {
                    let ip: IpAddr = format!("10.0.0.{}", rng.random_range(1..=8))
                        .parse()
                        .unwrap();
                    let to = [
                        "+14155550100",
                        "+14155550101",
                        "+447700900123",
                        "+4915112345678",
                    ][rng.random_range(0..4)];
                    let req = SmsRequest {
                        ip,
                        ..request("10.0.0.1", to)
                    };
                    limiter.decide(client, &req).await.expect("decided");
                    if rng.random_bool(0.05) {
                        tokio::time::sleep(Duration::from_millis(rng.random_range(1..60))).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let mut events = stream_events(pool.next(), limiter.layout()).await;
    assert_eq!(events.len(), 32 * 320);
    // Clients never span partitions, so each partition's order is the order that matters;
    // sorting by decision time keeps that order (ties keep stream order: the sort is stable).
    events.sort_by_key(|(_, e)| e.at_us);
    let rejected = assert_stream_matches_model(POLICY, &events);
    assert!(
        rejected > 1_000,
        "the run must exercise rejections, saw {rejected}"
    );
    drop_namespace(pool.next(), limiter.layout()).await;
}

#[tokio::test]
async fn rolling_windows_admit_exactly_at_the_edges_and_retry_after_is_exact() {
    const POLICY: &str = "3/2s,5/10s";
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(POLICY, 1);
    let req = request("192.0.2.44", "+14155550199");
    let mut decisions = Vec::new();
    for _ in 0..3 {
        let d = limiter.decide(redis, &req).await.unwrap();
        assert_eq!(d.outcome, Outcome::Accepted);
        decisions.push(d);
    }
    assert_eq!(
        decisions
            .iter()
            .map(|d| d.windows[0].remaining)
            .collect::<Vec<_>>(),
        [2, 1, 0]
    );
    assert_eq!(
        decisions
            .iter()
            .map(|d| d.windows[1].remaining)
            .collect::<Vec<_>>(),
        [4, 3, 2]
    );
    let refused = limiter.decide(redis, &req).await.unwrap();
    assert_eq!(refused.outcome, Outcome::Rejected);
    assert!(refused.windows[0].violated() && !refused.windows[1].violated());
    assert!(
        (1..=2).contains(&refused.retry_after),
        "{}",
        refused.retry_after
    );
    // Retry-After is never more than a second late: the exact wait rounds up to it.
    let exact_us = decisions[0].at_us + 2_000_000 - refused.at_us;
    assert_eq!(
        refused.retry_after,
        limiter::model::whole_seconds_up(exact_us)
    );
    // A refusal consumed nothing.
    assert_eq!(refused.windows[0].remaining, 0);
    assert_eq!(refused.windows[1].remaining, 2);

    tokio::time::sleep(Duration::from_secs(refused.retry_after)).await;
    let retried = limiter.decide(redis, &req).await.unwrap();
    assert_eq!(
        retried.outcome,
        Outcome::Accepted,
        "waiting Retry-After must suffice"
    );
    assert_eq!(retried.windows[1].remaining, 1);
    let next = limiter.decide(redis, &req).await.unwrap();
    // Five in ten seconds are used now: the long window refuses next, however the short one stands.
    if next.outcome == Outcome::Accepted {
        let last = limiter.decide(redis, &req).await.unwrap();
        assert_eq!(last.outcome, Outcome::Rejected);
        assert!(last.windows[1].violated());
    } else {
        assert!(next.windows.iter().any(|w| w.violated()));
    }
    let events = stream_events(redis, limiter.layout()).await;
    assert_stream_matches_model(POLICY, &events);
    drop_namespace(redis, limiter.layout()).await;
}

#[tokio::test]
async fn the_script_is_reloaded_after_redis_forgets_it() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter("3/1m", 1);
    limiter
        .decide(redis, &request("192.0.2.1", "+14155550111"))
        .await
        .unwrap();
    if redis.is_clustered() {
        let _: () = redis.script_flush_cluster(false).await.unwrap();
    } else {
        let _: () = redis.script_flush(false).await.unwrap();
    }
    let d = limiter
        .decide(redis, &request("192.0.2.1", "+14155550111"))
        .await
        .unwrap();
    assert_eq!(d.outcome, Outcome::Accepted);
    assert_eq!(d.windows[0].remaining, 1);
    drop_namespace(redis, limiter.layout()).await;
}

#[tokio::test]
async fn every_event_carries_the_request_and_the_decision() {
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter("1/1m", 2);
    let req = SmsRequest {
        from: Some("Acme"),
        message: "Grüße ✓",
        segments: 1,
        ..request("2001:db8::7", "+4915112345678")
    };
    let first = limiter.decide(redis, &req).await.unwrap();
    let second = limiter.decide(redis, &req).await.unwrap();
    let events = stream_events(redis, limiter.layout()).await;
    assert_eq!(events.len(), 2);
    let (id, accepted) = &events[0];
    assert_eq!(id, &first.stream_id);
    assert_eq!(accepted.id, first.id);
    assert_eq!(accepted.at_us, first.at_us);
    assert_eq!(accepted.ip, req.ip);
    assert_eq!(accepted.to, "+4915112345678");
    assert_eq!(accepted.from.as_deref(), Some("Acme"));
    assert_eq!(accepted.message, "Grüße ✓");
    assert_eq!(accepted.outcome, Outcome::Accepted);
    assert_eq!(accepted.policy, "1/1m");
    let (_, rejected) = &events[1];
    assert_eq!(rejected.id, second.id);
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert_eq!(rejected.violated, ["1m"]);
    assert_eq!(rejected.retry_after, second.retry_after);
    assert!(rejected.retry_after >= 59);
    drop_namespace(redis, limiter.layout()).await;
}

/// A quota member carries its time (decide.lua's `TIMED`), but quotas written before it did,
/// or by the cluster's reserve.lua, hold bare event ids: those are read by their scores and
/// count all the same, to the exact Retry-After.
#[tokio::test]
async fn quota_members_without_their_time_count_by_their_scores() {
    use fred::interfaces::SortedSetsInterface;
    const POLICY: &str = "3/1m,4/1d";
    let pool = redis().await;
    let redis = pool.next();
    let limiter = limiter(POLICY, 1);
    let req = request("192.0.2.45", "+14155550198");
    let first = limiter.decide(redis, &req).await.unwrap();
    assert_eq!(first.outcome, Outcome::Accepted);
    let quota = only_quota(redis, limiter.layout()).await;
    // Two requests counted the old way: 30 s and two hours before the first.
    let (minute_ago, hours_ago) = (first.at_us - 30_000_000, first.at_us - 7_200_000_000);
    let _: i64 = redis
        .zadd(
            quota.as_str(),
            None,
            None,
            false,
            false,
            vec![
                (minute_ago as f64, uuid::Uuid::now_v7().to_string()),
                (hours_ago as f64, uuid::Uuid::now_v7().to_string()),
            ],
        )
        .await
        .unwrap();
    // The minute counts two and the day three: one more fits both, exactly.
    let second = limiter.decide(redis, &req).await.unwrap();
    assert_eq!(second.outcome, Outcome::Accepted);
    assert_eq!(second.windows[0].remaining, 0);
    assert_eq!(second.windows[1].remaining, 0);
    assert_eq!(
        second.windows[0].reset_after,
        limiter::model::whole_seconds_up(minute_ago + 60_000_000 - second.at_us)
    );
    let third = limiter.decide(redis, &req).await.unwrap();
    assert_eq!(third.outcome, Outcome::Rejected);
    // The day refuses longest: until the request of two hours ago leaves it.
    let day_wait = limiter::model::whole_seconds_up(hours_ago + 86_400_000_000 - third.at_us);
    assert_eq!(third.retry_after, day_wait);
    assert!(third.retry_after > 70_000, "{}", third.retry_after);
    let events = stream_events(redis, limiter.layout()).await;
    let (_, rejected) = events.last().unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert_eq!(rejected.violated, ["1m", "1d"]);
    assert_eq!(rejected.retry_after, day_wait);
    assert_eq!(rejected.at_us, third.at_us);
    drop_namespace(redis, limiter.layout()).await;
}

/// A large quota's Retry-After is the wait for the request that must leave, also when a
/// lowered limit leaves many more counted than it allows (decide.lua reads that one apart).
#[tokio::test]
async fn a_lowered_limit_waits_for_the_request_that_must_leave() {
    use fred::interfaces::{KeysInterface, SortedSetsInterface};
    let pool = redis().await;
    let redis = pool.next();
    let first = limiter("30/1m", 1);
    let req = request("192.0.2.46", "+14155550197");
    let seed = first.decide(redis, &req).await.unwrap();
    let quota = only_quota(redis, first.layout()).await;
    // Twenty requests counted 2 s apart, from 59 s before the first decision on, each member
    // as decide.lua writes it: the byte 255, its time as a big-endian double, an event id.
    let times: Vec<i64> = (0..20)
        .map(|i| seed.at_us - 59_000_000 + i * 2_000_000)
        .collect();
    let members: Vec<(f64, fred::types::Value)> = times
        .iter()
        .map(|t| {
            let mut member = vec![255u8];
            member.extend((*t as f64).to_be_bytes());
            member.extend(uuid::Uuid::now_v7().to_string().bytes());
            (*t as f64, fred::types::Value::Bytes(member.into()))
        })
        .collect();
    let _: i64 = redis.del(quota.as_str()).await.unwrap();
    let _: i64 = redis
        .zadd(quota.as_str(), None, None, false, false, members)
        .await
        .unwrap();
    for (policy, leaving) in [("10/1m", 10), ("3/1m", 17)] {
        let lowered = RateLimiter::new(Policy::parse(policy).unwrap(), first.layout().clone());
        let refused = lowered.decide(redis, &req).await.unwrap();
        assert_eq!(refused.outcome, Outcome::Rejected, "{policy}");
        assert_eq!(
            refused.retry_after,
            limiter::model::whole_seconds_up(times[leaving] + 60_000_000 - refused.at_us),
            "{policy}: the {}th oldest must leave first",
            leaving + 1
        );
        assert_eq!(
            refused.windows[0].reset_after,
            limiter::model::whole_seconds_up(times[0] + 60_000_000 - refused.at_us)
        );
    }
    drop_namespace(redis, first.layout()).await;
}

/// The one sorted set under `layout`: the quota of the only client a test decided for.
async fn only_quota(redis: &fred::clients::Client, layout: &Layout) -> String {
    use fred::interfaces::KeysInterface;
    let mut quotas = Vec::new();
    for key in limiter::connection::namespace_keys(redis, layout.namespace())
        .await
        .unwrap()
    {
        let kind: String = redis.r#type(key.as_str()).await.unwrap();
        if kind == "zset" {
            quotas.push(key);
        }
    }
    assert_eq!(quotas.len(), 1, "{quotas:?}");
    quotas.remove(0)
}
