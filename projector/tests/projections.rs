//! The projections against a real Redis, held to a plain model computed from the same events:
//! counts, series, top lists, event pages and client usage; redelivery never double-counts;
//! undecodable entries go to the dead letters; a rebuild reproduces the live projections.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use eventlog::{Decoded, Entry};
use fred::interfaces::{KeysInterface, StreamsInterface};
use http_body_util::BodyExt;
use limiter::{Outcome, Policy, RateLimiter};
use projector::PartitionKeys;
use projector::apply;
use projector::{ApiState, GROUP, LiveFeed, Projector, Retention, router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const POLICY: &str = "2/1s,4/5s,6/1m";

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A router answering as of `now_us`.
async fn app_at(pool: &fred::clients::Pool, layout: &limiter::Layout, now_us: i64) -> axum::Router {
    let live = LiveFeed::start(pool.clone(), layout.clone(), CancellationToken::new()).await;
    let at = UNIX_EPOCH + Duration::from_micros(now_us as u64);
    router(
        ApiState::new(
            pool.clone(),
            layout.clone(),
            Policy::parse(POLICY).unwrap(),
            live,
        )
        .with_clock(move || at),
    )
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Pages through `/api/events` with `before` cursors and returns every event seen.
async fn all_pages(app: &axum::Router, outcome: &str, limit: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut before = String::new();
    loop {
        let (status, page) = get(
            app,
            &if outcome.is_empty() {
                format!("/api/events?limit={limit}&before={before}")
            } else {
                format!("/api/events?outcome={outcome}&limit={limit}&before={before}")
            },
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        assert!(events.len() <= limit);
        seen.extend(events);
        match page["next_before"].as_str() {
            Some(next) => before = next.to_string(),
            None => return seen,
        }
    }
}

/// Everything the API shows, compared with the model at one instant.
async fn assert_api_equals_model(app: &axum::Router, expected: &Expected, retention: &Retention) {
    let (status, stats) = get(app, "/api/stats?minutes=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["now"], rfc3339_micros(expected.now_us));
    assert_eq!(stats["totals"], expected.totals(), "totals");
    assert_eq!(
        stats["per_minute"],
        expected.per_minute(5),
        "per-minute series"
    );
    let (clients, numbers) = expected.top();
    assert_eq!(stats["top_clients"], clients, "top clients");
    assert_eq!(stats["top_numbers"], numbers, "top numbers");
    assert_eq!(
        stats["policy"],
        json!([{"name": "1s", "limit": 2, "window_seconds": 1},
               {"name": "5s", "limit": 4, "window_seconds": 5},
               {"name": "1m", "limit": 6, "window_seconds": 60}])
    );
    let (_, day) = get(app, "/api/stats?minutes=1440").await;
    assert_eq!(day["per_minute"].as_array().unwrap().len(), 1440);
    assert_eq!(day["per_minute"], expected.per_minute(1440));

    assert_eq!(
        all_pages(app, "", 37).await,
        expected.list(None, retention.recent),
        "recent events"
    );
    assert_eq!(
        all_pages(app, "accepted", 23).await,
        expected.list(Some(Outcome::Accepted), retention.recent),
        "accepted events"
    );
    assert_eq!(
        all_pages(app, "rejected", 50).await,
        expected.list(Some(Outcome::Rejected), retention.violations),
        "violations"
    );
    let policy = Policy::parse(POLICY).unwrap();
    for ip in (1..=5).map(|i| format!("10.0.0.{i}")) {
        for to in NUMBERS {
            let (status, usage) = get(
                app,
                &format!("/api/clients/{ip}/{}", to.replace('+', "%2B")),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                usage,
                expected.usage(&policy, &ip, to),
                "usage of {ip} {to}"
            );
        }
    }
}

#[tokio::test]
async fn projections_equal_the_model_after_random_requests() {
    let pool = redis().await;
    let layout = layout(3);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let retention = Retention {
        recent: 60,
        violations: 150,
    };
    let projector = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        projector::ProjectorConfig {
            retention: retention.clone(),
            batch_size: 64,
            ..config("p1")
        },
    );
    // Part of the traffic is projected while it happens, the rest afterwards.
    let (_, applied_during) = tokio::join!(random_requests(&pool, &limiter, 400, 8, 1), async {
        let mut n = 0;
        for _ in 0..20 {
            if let projector::Outcome::Projected(r) = projector.try_process_batch().await.unwrap() {
                n += r.applied;
            }
        }
        n
    });
    random_requests(&pool, &limiter, 400, 8, 2).await;
    let applied = applied_during + drain(&projector).await;
    assert_eq!(applied, 800);
    assert_eq!(projector.lag_entries().await.unwrap(), 0);

    let expected = Expected {
        now_us: now_us(),
        events: stream_events(pool.next(), &layout).await,
    };
    expected.check_inputs(limiter.policy());
    let rejected = expected
        .events
        .iter()
        .filter(|(_, _, e)| e.outcome == Outcome::Rejected)
        .count();
    // 20 clients (5 IPs x 4 numbers) each admit at least their 2/1s burst, so a run that fits
    // in one second rejects exactly 760: the bound is that, not a guess about the machine's speed.
    assert!(
        rejected > 100 && rejected <= 760,
        "the run must mix outcomes: {rejected} rejected"
    );
    let app = app_at(&pool, &layout, expected.now_us).await;
    assert_api_equals_model(&app, &expected, &retention).await;
    drop_namespace(pool.next(), &layout).await;
}

/// Reads up to `count` new entries of partition 0 as `consumer` without applying them: a
/// consumer that crashes right after its read.
async fn read_without_applying(
    pool: &fred::clients::Pool,
    layout: &limiter::Layout,
    consumer: &str,
) -> Vec<Entry> {
    let stream = layout.stream(0);
    let group = eventlog::Group {
        stream: &stream,
        group: GROUP,
    };
    group
        .read(pool.next(), consumer, eventlog::From::New, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|raw| match Decoded::new(0, raw, 1) {
            Decoded::Event(entry) => Some(entry),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn redelivered_entries_are_never_counted_twice() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let retention = Retention::default();
    // Creates the group before any traffic.
    let crashed = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        config("crashed"),
    );
    assert_eq!(
        crashed.try_process_batch().await.unwrap(),
        projector::Outcome::Idle
    );
    drop(crashed);

    random_requests(&pool, &limiter, 120, 4, 3).await;
    // "crashed" read everything and died before applying: all 120 are pending for it.
    let in_hand = read_without_applying(&pool, &layout, "crashed").await;
    assert_eq!(in_hand.len(), 120);

    // Another consumer claims them once they are idle and applies them.
    let rescuer = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        projector::ProjectorConfig {
            claim_idle: Duration::from_millis(1),
            ..config("rescuer")
        },
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(drain(&rescuer).await, 120);

    // The crashed consumer comes back and applies what it had in hand: every entry is skipped.
    let keys = PartitionKeys::new(&layout, 0);
    let again = apply(pool.next(), &keys, Some(GROUP), &retention, &in_hand)
        .await
        .unwrap();
    assert_eq!((again.applied, again.skipped), (0, 120));
    // Its restart re-reads its own pending entries first: there are none left.
    let restarted = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        config("crashed"),
    );
    assert_eq!(drain(&restarted).await, 0);

    // More traffic; "restarted" reads it and is killed before applying; on restart it re-reads
    // its own pending entries and applies each once.
    random_requests(&pool, &limiter, 60, 2, 4).await;
    assert_eq!(
        read_without_applying(&pool, &layout, "again").await.len(),
        60
    );
    let owner = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        config("again"),
    );
    assert_eq!(drain(&owner).await, 60);
    assert_eq!(owner.lag_entries().await.unwrap(), 0);

    let expected = Expected {
        now_us: now_us(),
        events: stream_events(pool.next(), &layout).await,
    };
    assert_eq!(expected.events.len(), 180);
    let app = app_at(&pool, &layout, expected.now_us).await;
    assert_api_equals_model(&app, &expected, &retention).await;
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test]
async fn undecodable_entries_go_to_the_dead_letters_and_never_block() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let projector = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        config("p"),
    );
    drain(&projector).await;
    random_requests(&pool, &limiter, 10, 1, 5).await;
    let garbage: String = pool
        .next()
        .xadd(
            layout.stream(0),
            false,
            None,
            "*",
            vec![("e", Bytes::from_static(b"\xc1garbage"))],
        )
        .await
        .unwrap();
    let _: String = pool
        .next()
        .xadd(
            layout.stream(0),
            false,
            None,
            "*",
            vec![("x", "not an event")],
        )
        .await
        .unwrap();
    random_requests(&pool, &limiter, 10, 1, 6).await;
    assert_eq!(drain(&projector).await, 20);
    assert_eq!(projector.lag_entries().await.unwrap(), 0);

    let dead = eventlog::read_dead_letters(pool.next(), &layout, 0)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].1.group, "projector");
    assert_eq!(dead[0].1.stream_id.to_string(), garbage);
    assert_eq!(dead[0].1.payload, Bytes::from_static(b"\xc1garbage"));
    assert!(dead[0].1.reason.contains("undecodable"), "{:?}", dead[0].1);
    assert!(dead[1].1.reason.contains("no `e` field"), "{:?}", dead[1].1);

    let expected = Expected {
        now_us: now_us(),
        events: stream_events(pool.next(), &layout).await,
    };
    let app = app_at(&pool, &layout, expected.now_us).await;
    let (_, stats) = get(&app, "/api/stats").await;
    assert_eq!(stats["totals"], expected.totals());
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test]
async fn rebuild_reproduces_the_live_projections_exactly() {
    let pool = redis().await;
    let layout = layout(2);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let retention = Retention {
        recent: 40,
        violations: 90,
    };
    let projector = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        projector::ProjectorConfig {
            retention: retention.clone(),
            ..config("p")
        },
    );
    random_requests(&pool, &limiter, 600, 6, 7).await;
    drain(&projector).await;

    let now = now_us();
    let app = app_at(&pool, &layout, now).await;
    let routes = [
        "/api/stats?minutes=10&days=3".to_string(),
        "/api/events?limit=1000".into(),
        "/api/events?outcome=accepted&limit=1000".into(),
        "/api/events?outcome=rejected&limit=1000".into(),
    ];
    let mut live = Vec::new();
    for route in &routes {
        live.push(get(&app, route).await.1);
    }

    let report = projector::rebuild(
        &pool,
        &layout,
        &retention,
        now,
        // The archive and the stream overlap in practice: feed the stream twice to show the
        // overlap is skipped.
        futures::StreamExt::chain(
            projector::stream_source(pool.clone(), layout.clone()),
            projector::stream_source(pool.clone(), layout.clone()),
        ),
    )
    .await
    .unwrap();
    assert_eq!((report.applied, report.skipped), (600, 600));
    for (route, before) in routes.iter().zip(&live) {
        assert_eq!(
            &get(&app, route).await.1,
            before,
            "{route} after the rebuild"
        );
    }
    // The group continues after the rebuilt entries: nothing is projected twice, new traffic is.
    assert_eq!(drain(&projector).await, 0);
    random_requests(&pool, &limiter, 30, 1, 8).await;
    assert_eq!(drain(&projector).await, 30);
    let expected = Expected {
        now_us: now_us(),
        events: stream_events(pool.next(), &layout).await,
    };
    let app = app_at(&pool, &layout, expected.now_us).await;
    assert_api_equals_model(&app, &expected, &retention).await;
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test]
async fn bad_queries_are_problem_json_naming_the_field() {
    let pool = redis().await;
    let layout = layout(1);
    let app = app_at(&pool, &layout, now_us()).await;
    for (uri, field) in [
        ("/api/stats?minutes=0", "minutes"),
        ("/api/stats?minutes=1441", "minutes"),
        ("/api/stats?days=91", "days"),
        ("/api/events?limit=abc", "limit"),
        ("/api/events?outcome=maybe", "outcome"),
        ("/api/events?before=yesterday", "before"),
        ("/api/clients/not-an-ip/%2B14155550123", "ip"),
        ("/api/clients/10.0.0.1/hello", "to"),
    ] {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{uri}"
        );
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][0]["field"], field, "{uri}");
    }
    // An empty namespace is not an error: zeros and empty lists.
    let (status, stats) = get(&app, "/api/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["per_minute"].as_array().unwrap().len(), 60);
    assert_eq!(
        stats["totals"]["today"],
        json!({"accepted": 0, "rejected": 0})
    );
    assert!(
        stats.get("per_day").is_none(),
        "per_day only when asked for"
    );
    let (_, events) = get(&app, "/api/events").await;
    assert_eq!(events, json!({"events": [], "next_before": null}));
}
#[tokio::test]
async fn an_entry_whose_apply_keeps_failing_is_dead_lettered_after_the_cap_with_its_payload() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse(POLICY).unwrap(),
        layout.clone(),
    ));
    let projector = Projector::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        projector::ProjectorConfig {
            claim_idle: Duration::from_millis(1),
            max_deliveries: 2,
            ..config("p")
        },
    );
    assert_eq!(drain(&projector).await, 0);
    random_requests(&pool, &limiter, 20, 2, 8).await;
    // A rejected event of a minute whose top list is not a sorted set: applying it fails.
    let mut poison = stream_events(pool.next(), &layout).await[0].2.clone();
    poison.id = uuid::Uuid::now_v7();
    poison.outcome = Outcome::Rejected;
    poison.violated = vec!["1s".into()];
    poison.retry_after = 1;
    poison.at_us -= 3_600_000_000;
    let minute = poison.at_us.div_euclid(60_000_000);
    let keys = PartitionKeys::new(&layout, 0);
    let _: () = pool
        .next()
        .set(
            keys.top_clients(minute),
            "not a sorted set",
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let payload = Bytes::from(limiter::codec::encode(&poison));
    let poison_id: String = pool
        .next()
        .xadd(
            layout.stream(0),
            false,
            None,
            "*",
            vec![("e", payload.clone())],
        )
        .await
        .unwrap();
    random_requests(&pool, &limiter, 20, 2, 9).await;

    // The batch holding it fails as a whole; the engine applies its entries one at a time, so
    // every good entry is projected while the poison stays pending and is redelivered by the
    // claim passes until its deliveries pass the cap.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        projector.try_process_batch().await.unwrap();
        let dead = eventlog::read_dead_letters(pool.next(), &layout, 0)
            .await
            .unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the poison entry was never dead-lettered"
        );
    };
    assert_eq!(dead.len(), 1);
    let letter = &dead[0].1;
    assert_eq!(letter.stream_id.to_string(), poison_id);
    assert_eq!(letter.group, "projector");
    assert_eq!(letter.deliveries, 3);
    assert!(letter.reason.contains("delivered 3 times"), "{letter:?}");
    assert_eq!(letter.payload, payload, "the payload is kept intact");
    assert_eq!(limiter::codec::decode(&letter.payload).unwrap(), poison);
    drain(&projector).await;
    assert_eq!(
        projector.lag_entries().await.unwrap(),
        0,
        "nothing left behind"
    );

    // Every other entry was projected exactly once.
    let _: i64 = pool.next().del(keys.top_clients(minute)).await.unwrap();
    let expected = Expected {
        now_us: now_us(),
        events: stream_events(pool.next(), &layout)
            .await
            .into_iter()
            .filter(|(_, id, _)| id.to_string() != poison_id)
            .collect(),
    };
    assert_eq!(expected.events.len(), 40);
    let app = app_at(&pool, &layout, expected.now_us).await;
    let (_, stats) = get(&app, "/api/stats").await;
    assert_eq!(stats["totals"], expected.totals());
    drop_namespace(pool.next(), &layout).await;
}
