//! The live feed against a real Redis and a real HTTP server: one reader per process whatever
//! the audience, every event in stream order, stats ticks, and slow clients dropped alone.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fred::interfaces::ClientLike;
use fred::types::CustomCommand;
use futures::StreamExt;
use limiter::{Policy, RateLimiter, SmsRequest};
use projector::{ApiState, LiveFeed, router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Serves the router on 127.0.0.1:0 and returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Splits an SSE body into `(event, data)` pairs as they arrive.
struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    async fn connect(url: &str) -> Self {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in frame.lines() {
                    if let Some(e) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                        event = e.to_string();
                    } else if let Some(d) =
                        line.strip_prefix("data: ").or(line.strip_prefix("data:"))
                    {
                        data.push_str(d);
                    }
                }
                if event.is_empty() {
                    continue; // keep-alive comments
                }
                return Some((event, data));
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn next_sms(&mut self) -> Value {
        loop {
            let (event, data) = tokio::time::timeout(Duration::from_secs(10), self.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open");
            if event == "sms" {
                return serde_json::from_str(&data).unwrap();
            }
        }
    }
}

/// Connections named `name`, per node (every primary of a cluster, where a reader holds one
/// connection to each).
async fn connections_named(pool: &fred::clients::Pool, name: &str) -> Vec<usize> {
    let redis = pool.next();
    let list = || CustomCommand::new_static("CLIENT", None, false);
    let lists: Vec<String> = if redis.is_clustered() {
        let mut lists = Vec::new();
        for server in redis.active_connections() {
            let one: String = redis
                .with_cluster_node(server)
                .custom(list(), vec!["LIST"])
                .await
                .unwrap();
            lists.push(one);
        }
        lists
    } else {
        vec![redis.custom(list(), vec!["LIST"]).await.unwrap()]
    };
    lists
        .iter()
        .map(|list| {
            list.lines()
                .filter(|l| l.split(' ').any(|f| f == format!("name={name}")))
                .count()
        })
        .collect()
}

#[tokio::test]
async fn an_sse_client_connected_before_a_burst_receives_all_1000_events_in_stream_order() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse("3/1m").unwrap(),
        layout.clone(),
    ));
    let shutdown = CancellationToken::new();
    let live = LiveFeed::start(pool.clone(), layout.clone(), shutdown.clone()).await;
    let base = serve(router(ApiState::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        live,
    )))
    .await;
    let mut client = SseReader::connect(&format!("{base}/api/live")).await;

    random_requests(&pool, &limiter, 1_000, 10, 9).await;
    let mut received = Vec::new();
    for _ in 0..1_000 {
        received.push(client.next_sms().await);
    }
    let on_stream = stream_events(pool.next(), &layout).await;
    assert_eq!(on_stream.len(), 1_000);
    for ((_, id, event), got) in on_stream.iter().zip(&received) {
        assert_eq!(
            got,
            &event_json(*id, event),
            "events arrive in stream order"
        );
    }
    shutdown.cancel();
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test]
async fn two_hundred_sse_clients_share_one_redis_reader() {
    let pool = redis().await;
    let layout = layout(2);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse("3/1m").unwrap(),
        layout.clone(),
    ));
    let shutdown = CancellationToken::new();
    let live = LiveFeed::start(pool.clone(), layout.clone(), shutdown.clone()).await;
    let app = router(ApiState::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        live.clone(),
    ));
    let base = serve(app).await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(SseReader::connect(&format!("{base}/api/live")).await);
    }
    assert_eq!(live.receivers(), 200);

    let req = SmsRequest {
        ip: "192.0.2.1".parse().unwrap(),
        to: "+14155550100",
        from: None,
        message: "hi",
        segments: 1,
    };
    let decision = limiter.decide(pool.next(), &req).await.unwrap();
    for client in &mut clients {
        assert_eq!(client.next_sms().await["id"], decision.id.to_string());
    }
    // One reader task and one named Redis connection, however many browsers listen.
    assert_eq!(live.reader_tasks(), 1);
    let named = connections_named(&pool, live.reader_name()).await;
    assert!(named.iter().all(|n| *n == 1), "{named:?}");

    // Every client also gets the stats tick, computed once per second for all of them.
    let (event, data) = loop {
        let frame = tokio::time::timeout(Duration::from_secs(3), clients[7].next())
            .await
            .unwrap()
            .unwrap();
        if frame.0 == "stats" {
            break frame;
        }
    };
    assert_eq!(event, "stats");
    let tick: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        tick["totals"]["last_minute"]["accepted"], 0,
        "nothing is projected in this test"
    );
    assert!(tick["now"].as_str().unwrap().ends_with('Z'));

    drop(clients);
    shutdown.cancel();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let named = connections_named(&pool, live.reader_name()).await;
        if live.reader_tasks() == 0 && named.iter().all(|n| *n == 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shutdown stops the reader and closes its connection: {} tasks, {named:?}",
            live.reader_tasks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_falls_behind_is_dropped_and_the_others_keep_up() {
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse("3/1m").unwrap(),
        layout.clone(),
    ));
    let shutdown = CancellationToken::new();
    let live = LiveFeed::start_with(pool.clone(), layout.clone(), shutdown.clone(), 32).await;
    let slow = projector::live_stream(&live);
    let fast = projector::live_stream(&live);
    let mut slow = Box::pin(slow);
    let mut fast = Box::pin(fast);
    // The fast reader reports every frame it gets (events, and the odd stats tick).
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0usize);
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < 100 {
            let _ = fast.next().await.unwrap().unwrap();
            n += 1;
            seen_tx.send_replace(n);
        }
        n
    });
    // The fast reader keeps up with 100 events while the slow one reads nothing. In lockstep:
    // the next event is made only once the fast reader has the last one, so it is never 32
    // behind however loaded the machine is; the slow one falls behind all the same.
    for i in 1..=100 {
        let req = SmsRequest {
            ip: "192.0.2.9".parse().unwrap(),
            to: "+14155550100",
            from: None,
            message: "hi",
            segments: 1,
        };
        limiter.decide(pool.next(), &req).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), seen_rx.wait_for(|n| *n >= i))
            .await
            .expect("the fast reader gets every event")
            .unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(10), reading)
            .await
            .unwrap()
            .unwrap()
            >= 100
    );
    // The slow one has what fit in the buffer, then its stream ends.
    let mut got = 0;
    while tokio::time::timeout(Duration::from_secs(5), slow.next())
        .await
        .unwrap()
        .is_some()
    {
        got += 1;
    }
    assert!(got <= 32, "a lagging receiver is cut off, it got {got}");
    assert_eq!(live.reader_tasks(), 1);
    shutdown.cancel();
    drop_namespace(pool.next(), &layout).await;
}

#[tokio::test]
async fn delivery_status_changes_reach_sse_clients_as_status_events_in_the_callback_shape() {
    use limiter::delivery::{
        Admission, Change, Deliverable, DeliveryStatus, DeliveryStore, Schedule, StatusEvent,
        now_us,
    };
    let pool = redis().await;
    let layout = layout(1);
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse("3/1m").unwrap(),
        layout.clone(),
    ));
    let shutdown = CancellationToken::new();
    let live = LiveFeed::start(pool.clone(), layout.clone(), shutdown.clone()).await;
    let base = serve(router(ApiState::new(
        pool.clone(),
        layout.clone(),
        limiter.policy().clone(),
        live,
    )))
    .await;
    let mut client = SseReader::connect(&format!("{base}/api/live")).await;

    let to = "+14155550142";
    let request = SmsRequest {
        ip: "10.0.0.9".parse().unwrap(),
        to,
        from: None,
        message: "code 1234",
        segments: 1,
    };
    let decision = limiter.decide(pool.next(), &request).await.unwrap();
    let store = DeliveryStore::new(layout.clone());
    let message = Deliverable {
        id: decision.id,
        at_us: decision.at_us,
        to: to.into(),
        from: None,
        message: "code 1234".into(),
        stored: None,
        segments: 1,
        status_callback: None,
        api_client: None,
    };
    let admission = Admission {
        message: &message,
        body: &message.message,
        provider: "twilio",
        deadline_us: now_us() + 60_000_000,
        due_ms: now_us() / 1000,
    };
    assert!(
        store
            .admit(pool.next(), decision.partition, &admission)
            .await
            .unwrap()
    );
    let mut sent = StatusEvent::new(decision.id, to, DeliveryStatus::Sent, "twilio");
    sent.attempt = 1;
    sent.provider_id = Some("SM0123".into());
    let change = Change {
        event: sent,
        schedule: Schedule::Keep,
    };
    assert!(
        store
            .change(pool.next(), decision.partition, &change)
            .await
            .unwrap()
    );

    // The decision first, then the status change recorded after it (admission writes none).
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (event, data) = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open");
        if event == "sms" || event == "status" {
            seen.push((event, serde_json::from_str::<Value>(&data).unwrap()));
        }
    }
    assert_eq!(seen[0].0, "sms");
    assert_eq!(seen[0].1["id"], decision.id.to_string());
    let statuses: Vec<&str> = seen[1..]
        .iter()
        .map(|(e, v)| {
            assert_eq!(e, "status");
            assert_eq!(
                v["id"],
                decision.id.to_string(),
                "the message's id, not the event's"
            );
            assert_eq!(v["to"], to);
            assert_eq!(v["provider"], "twilio");
            v["status"].as_str().unwrap()
        })
        .collect();
    assert_eq!(statuses, ["sent"]);
    let sent = &seen[1].1;
    assert_eq!(sent["provider_id"], "SM0123");
    assert_eq!(sent["attempt"], 1);
    assert!(sent["detail"].is_null());
    let keys: std::collections::BTreeSet<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "at",
            "attempt",
            "detail",
            "id",
            "provider",
            "provider_id",
            "status",
            "to"
        ]
        .into()
    );
    shutdown.cancel();
}
