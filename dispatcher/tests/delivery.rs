//! Delivery through the `log` provider, Twilio's signed receipts over HTTP, the client's
//! signed `status_callback`, and the token bucket shared by replicas, against a real Redis.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use dispatcher::bucket::TokenBucket;
use dispatcher::callbacks::{CallbackConfig, CallbackSender, SIGNATURE_HEADER, sign};
use dispatcher::http::{DeliveryApi, TWILIO_STATUS_PATH, TwilioReceipts};
use dispatcher::log::LogProvider;
use dispatcher::{Dispatcher, Provider};
use limiter::delivery::DeliveryStatus;

const SECRET: &str = "callback-secret-for-tests";

fn outbox() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smsgate-outbox-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("outbox.log")
}

fn callbacks(allow: &[&str]) -> CallbackSender {
    CallbackSender::new(CallbackConfig {
        secret: Some(SECRET.into()),
        api_tokens: Default::default(),
        allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
        timeout: Duration::from_secs(2),
        max_age: Duration::from_secs(86_400),
    })
}

/// A client's callback endpoint: records every POST with its signature header.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, String)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    r.got
        .lock()
        .unwrap()
        .push((signature, String::from_utf8(body.to_vec()).unwrap()));
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/cb", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

async fn serve(api: DeliveryApi) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, dispatcher::http::router(api))
            .await
            .unwrap()
    });
    url
}

#[tokio::test]
async fn the_log_provider_writes_the_outbox_and_marks_delivered() {
    let pool = redis().await;
    let layout = layout();
    let accepted = accepted_and_rejected(&pool, &layout, 50, None).await;
    let path = outbox();
    let provider: Arc<dyn Provider> = Arc::new(LogProvider::new(&path));
    let d = Dispatcher::new(pool.clone(), layout.clone(), provider, None, fast_config());
    deliver_stream(&d, &pool, &layout, 16).await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50);
    let mut bodies: Vec<String> = lines
        .iter()
        .map(|l| l["body"].as_str().unwrap().to_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = accepted.into_iter().map(|(_, b)| b).collect();
    expected.sort();
    assert_eq!(bodies, expected);

    // GET /api/sms/{id}: the status and its history, never the body.
    let base = serve(DeliveryApi {
        redis: pool.clone(),
        store: d.store().clone(),
        twilio: None,
    })
    .await;
    let id = lines[0]["id"].as_str().unwrap();
    let answer: serde_json::Value = reqwest::get(format!("{base}/api/sms/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "delivered");
    assert_eq!(answer["provider"], "log");
    assert_eq!(answer["attempts"], 1);
    let history: Vec<&str> = answer["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["queued", "sending", "sent", "delivered"]);
    assert!(!answer.to_string().contains("code "), "no body in {answer}");
    let missing = reqwest::get(format!("{base}/api/sms/{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = reqwest::get(format!("{base}/api/sms/not-a-uuid"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_signed_twilio_receipt_delivers_within_a_second_and_a_forged_one_is_403() {
    let prism = Prism::start().await;
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 2, None).await;
    let d = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        twilio(&prism.url),
        None,
        fast_config(),
    );
    deliver_stream(&d, &pool, &layout, 10).await;
    let messages = deliverables(&pool, &layout, 0).await;
    let base = serve(DeliveryApi {
        redis: pool.clone(),
        store: d.store().clone(),
        twilio: Some(TwilioReceipts {
            auth_token: TOKEN.into(),
            public_url: None,
        }),
    })
    .await;
    let http = reqwest::Client::new();
    let receipt = |id: uuid::Uuid, status: &str| {
        let url = format!("{base}{TWILIO_STATUS_PATH}?id={id}");
        let params: Vec<(String, String)> = [
            ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("MessageStatus", status),
            ("AccountSid", ACCOUNT),
            ("To", "+14155550000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let signature = dispatcher::twilio::signature(TOKEN, &url, &params);
        (url, params, signature)
    };

    let (url, params, signature) = receipt(messages[0].id, "delivered");
    let started = Instant::now();
    let answer = http
        .post(&url)
        .header("X-Twilio-Signature", &signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let delivered = eventually(Duration::from_secs(1), || async {
        let state: serde_json::Value = http
            .get(format!("{base}/api/sms/{}", messages[0].id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state["status"] == "delivered"
    })
    .await;
    assert!(delivered && started.elapsed() < Duration::from_secs(1));

    // Forged: the signature of other parameters, a wrong token, or none at all. What the
    // second message's state was before (sent, or queued again if its send hit a transient
    // error under load) is what it must stay.
    let second_status = || async {
        let state = d.store().load(pool.next(), 0, &messages[1].id).await;
        state.unwrap().unwrap().status
    };
    let before = second_status().await;
    assert_ne!(before, DeliveryStatus::Delivered);
    let (url, params, _) = receipt(messages[1].id, "delivered");
    let (_, _, other) = receipt(messages[0].id, "delivered");
    let wrong = dispatcher::twilio::signature("not-the-token", &url, &params);
    for signature in [Some(other), Some(wrong), None] {
        let mut request = http.post(&url).form(&params);
        if let Some(s) = signature {
            request = request.header("X-Twilio-Signature", s);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 403);
    }
    assert_eq!(
        second_status().await,
        before,
        "a forged receipt changes nothing"
    );
}

#[tokio::test]
async fn the_clients_status_callback_receives_every_change_signed() {
    let (receiver, url) = start_receiver().await;
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 3, Some(&url)).await;
    let provider: Arc<dyn Provider> = Arc::new(LogProvider::new(outbox()));
    let d = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        provider,
        Some(callbacks(&["127.0.0.0/8"])),
        fast_config(),
    );
    deliver_stream(&d, &pool, &layout, 10).await;
    let all = eventually(Duration::from_secs(10), || async {
        d.callback_step().await.unwrap();
        receiver.got.lock().unwrap().len() >= 9
    })
    .await;
    assert!(all, "sending, sent, delivered for each of 3 messages");
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 9);
    let mut per_message: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (signature, body) in &got {
        let (t, _) = signature.trim_start_matches("t=").split_once(',').unwrap();
        assert_eq!(signature, &sign(SECRET, t.parse().unwrap(), body), "signed");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        for field in [
            "id",
            "to",
            "status",
            "at",
            "provider",
            "provider_id",
            "attempt",
            "detail",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        per_message
            .entry(json["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(json["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_message.len(), 3);
    for statuses in per_message.values_mut() {
        statuses.sort();
        assert_eq!(statuses, &["delivered", "sending", "sent"]);
    }
}

#[tokio::test]
async fn a_callback_to_a_private_address_is_refused_unless_allowed() {
    let (receiver, url) = start_receiver().await;
    let pool = redis().await;
    let layout = layout();
    accepted_and_rejected(&pool, &layout, 2, Some(&url)).await;
    let provider: Arc<dyn Provider> = Arc::new(LogProvider::new(outbox()));
    let d = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        provider,
        Some(callbacks(&["10.0.0.0/8"])),
        fast_config(),
    );
    deliver_stream(&d, &pool, &layout, 10).await;
    // Every pending callback is taken and refused: none is left, none reached the receiver.
    assert!(matches!(
        d.callback_step().await.unwrap(),
        dispatcher::StepOutcome::Worked(6)
    ));
    assert_eq!(
        d.callback_step().await.unwrap(),
        dispatcher::StepOutcome::Idle
    );
    assert!(receiver.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn replicas_share_one_token_bucket() {
    let pool = redis().await;
    let layout = layout();
    let key = layout.global("provider:tokens");
    let rate = 20;
    let replicas: Vec<TokenBucket> = (0..3)
        .map(|_| TokenBucket::new(key.clone(), rate))
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = replicas
        .into_iter()
        .map(|bucket| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    bucket.take(pool.next()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // 60 tokens at 20/s with a burst of 20: the last is taken no sooner than 2 s in.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_900), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn bodies_wait_apart_until_admission_and_one_gone_past_its_ttl_expires_unsent() {
    use fred::interfaces::{HashesInterface, KeysInterface};
    let pool = redis().await;
    let layout = layout();
    // The default, `redacted`: the events carry "code •…", the bodies wait in their own keys.
    accepted_and_rejected(&pool, &layout, 3, None).await;
    let mut waiting = Vec::new();
    for partition in 0..layout.partitions() {
        for d in deliverables(&pool, &layout, partition).await {
            assert!(!d.carries_body(), "{d:?}");
            let body: Option<String> = pool
                .next()
                .get(layout.body(partition, &d.id))
                .await
                .unwrap();
            assert!(body.unwrap().starts_with("code "));
            waiting.push((partition, d.id));
        }
    }
    assert_eq!(waiting.len(), 3);
    // One body outlived its TTL (the dispatcher was away longer than the delivery TTL).
    let (lost_partition, lost) = waiting[0];
    let _: i64 = pool
        .next()
        .del(layout.body(lost_partition, &lost))
        .await
        .unwrap();

    let path = outbox();
    let provider: Arc<dyn Provider> = Arc::new(LogProvider::new(&path));
    let d = Dispatcher::new(pool.clone(), layout.clone(), provider, None, fast_config());
    deliver_stream(&d, &pool, &layout, 16).await;

    let sent = std::fs::read_to_string(&path).unwrap();
    assert_eq!(sent.lines().count(), 2, "{sent}");
    for (partition, id) in &waiting {
        let key_left: bool = pool
            .next()
            .exists(layout.body(*partition, id))
            .await
            .unwrap();
        assert!(!key_left, "admission drops the waiting body");
        let state = d
            .store()
            .load(pool.next(), *partition, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.body, None, "gone from the message's state once final");
        let in_hash: Option<String> = pool
            .next()
            .hget(d.store().message_key(*partition, id), "body")
            .await
            .unwrap();
        assert_eq!(in_hash, None);
        if *id == lost {
            assert_eq!(state.status, DeliveryStatus::Expired);
            assert!(!sent.contains(&id.to_string()));
        } else {
            assert_eq!(state.status, DeliveryStatus::Delivered);
        }
    }
    let _ = limiter::connection::drop_namespace(pool.next(), layout.namespace()).await;
}
