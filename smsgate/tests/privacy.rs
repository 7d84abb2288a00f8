//! `SMSGATE_STORE_MESSAGE` end to end, with every role in one process on a real Redis and a
//! real Postgres: a one-time code sent through the API is delivered in full (the `log`
//! provider's outbox gets it), and then, by default, is held nowhere in Redis, nowhere in the
//! archive and in no operator response; with `full` it is kept; with `none` no body is.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use fred::interfaces::ClientLike;
use fred::interfaces::KeysInterface;
use fred::types::{ClusterHash, CustomCommand, Value};
use limiter::StoreMessage;
use smsgate::Roles;
use sqlx::PgPool;
use support::TestApp;

const CODE: &str = "493817";
const BODY: &str = "Your code is 493817";
const TO: &str = "+14155550123";

/// Every key of the app's namespace with all it holds, read back as text.
async fn redis_text(app: &TestApp) -> Vec<(String, String)> {
    let pool = app.redis().await;
    let redis = pool.next();
    let command =
        |name: &'static str| CustomCommand::new_static(name, ClusterHash::FirstKey, false);
    let keys = limiter::connection::namespace_keys(redis, &app.settings.namespace)
        .await
        .unwrap();
    let mut all = Vec::new();
    for key in keys {
        let kind: String = redis.r#type(key.as_str()).await.unwrap();
        let (name, args): (&'static str, Vec<String>) = match kind.as_str() {
            "string" => ("GET", vec![key.clone()]),
            "hash" => ("HGETALL", vec![key.clone()]),
            "list" => ("LRANGE", vec![key.clone(), "0".into(), "-1".into()]),
            "zset" => ("ZRANGE", vec![key.clone(), "0".into(), "-1".into()]),
            "set" => ("SMEMBERS", vec![key.clone()]),
            "stream" => ("XRANGE", vec![key.clone(), "-".into(), "+".into()]),
            other => panic!("{key} is a {other}"),
        };
        let value: Value = redis.custom(command(name), args).await.unwrap();
        all.push((key, text(&value)));
    }
    all
}

fn text(value: &Value) -> String {
    match value {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::String(s) => s.to_string(),
        Value::Array(values) => values.iter().map(text).collect::<Vec<_>>().join("\n"),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| format!("{k:?}={}", text(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    }
}

/// Sends the code (accepted) and three more (the fourth is rejected by `3/1m`), waits until
/// the code is delivered and all four decisions are archived; returns the code's id.
async fn send_and_settle(app: &TestApp, outbox: &std::path::Path) -> (String, PgPool) {
    let mut first = None;
    for i in 0..4 {
        let response = app
            .http
            .post(app.url("/api/sms"))
            .json(&serde_json::json!({"to": TO, "message": BODY}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, if i < 3 { 202 } else { 429 }, "request {i}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(!answer.to_string().contains(CODE), "{answer}");
        first.get_or_insert(answer["id"].as_str().unwrap().to_owned());
    }
    let id = first.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The archiver creates and migrates its database in the background.
    let pg = loop {
        match PgPool::connect(&app.settings.database_url).await {
            Ok(pg) => break pg,
            Err(e) => assert!(Instant::now() < deadline, "no archive database: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        let message = app.get_json(&format!("/api/sms/{id}")).await;
        let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_events")
            .fetch_one(&pg)
            .await
            .unwrap_or(0);
        let statuses: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_status")
            .fetch_one(&pg)
            .await
            .unwrap_or(0);
        // Three accepted: queued is not an event; sending, sent, delivered are, for each.
        if message["status"] == "delivered" && archived == 4 && statuses >= 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {message}, {archived} archived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = std::fs::read_to_string(outbox).unwrap();
    assert!(
        sent.contains(BODY),
        "the provider got the body in full: {sent}"
    );
    (id, pg)
}

/// Every operator response an operator could read the message from.
async fn operator_text(app: &TestApp, id: &str) -> String {
    let mut all = String::new();
    for path in [
        "/api/events".to_owned(),
        "/api/events?outcome=rejected".to_owned(),
        "/api/stats".to_owned(),
        "/api/history".to_owned(),
        format!("/api/audit?to=%2B{}", &TO[1..]),
        format!("/api/sms/{id}"),
        format!("/api/clients/127.0.0.1/%2B{}", &TO[1..]),
    ] {
        let response = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        all.push_str(&response.text().await.unwrap());
        all.push('\n');
    }
    all
}

async fn spawn(store: StoreMessage, outbox: &std::path::Path) -> TestApp {
    let outbox = outbox.to_owned();
    TestApp::spawn(Roles::ALL, move |s| {
        s.store_message = store;
        s.archive_interval = Duration::from_millis(200);
        s.delivery.outbox = outbox;
    })
    .await
}

fn outbox_path(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("smsgate-privacy-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn by_default_a_delivered_code_is_held_nowhere() {
    let outbox = outbox_path("redacted.log");
    let app = spawn(StoreMessage::default(), &outbox).await;
    let (id, pg) = send_and_settle(&app, &outbox).await;

    let holders: Vec<String> = redis_text(&app)
        .await
        .into_iter()
        .filter(|(_, text)| text.contains(CODE))
        .map(|(key, _)| key)
        .collect();
    assert!(
        holders.is_empty(),
        "redis still holds the code in {holders:?}"
    );

    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT outcome, message, message_stored FROM sms_events ORDER BY at")
            .fetch_all(&pg)
            .await
            .unwrap();
    assert_eq!(rows.len(), 4);
    for (outcome, message, stored) in &rows {
        assert_eq!(message, "Your code is ••••••", "{outcome}");
        let expected = if outcome == "accepted" {
            "redacted"
        } else {
            "preview"
        };
        assert_eq!(stored.as_deref(), Some(expected));
    }
    let anywhere: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sms_events e WHERE e::text LIKE '%493817%') \
              + (SELECT count(*) FROM sms_status s WHERE s::text LIKE '%493817%')",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(anywhere, 0);

    let answers = operator_text(&app, &id).await;
    assert!(!answers.contains(CODE), "{answers}");
    assert!(answers.contains("Your code is ••••••"), "{answers}");
    pg.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn full_keeps_the_code_of_accepted_messages_only() {
    let outbox = outbox_path("full.log");
    let app = spawn(StoreMessage::Full, &outbox).await;
    let (id, pg) = send_and_settle(&app, &outbox).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT outcome, message FROM sms_events ORDER BY at")
            .fetch_all(&pg)
            .await
            .unwrap();
    for (outcome, message) in &rows {
        let expected = if outcome == "accepted" {
            BODY
        } else {
            "Your code is ••••••"
        };
        assert_eq!(message, expected, "{outcome}");
    }
    let answers = operator_text(&app, &id).await;
    assert!(answers.contains(BODY), "{answers}");
    pg.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn none_keeps_no_body_and_still_delivers_it() {
    let outbox = outbox_path("none.log");
    let app = spawn(StoreMessage::None, &outbox).await;
    let (id, pg) = send_and_settle(&app, &outbox).await;
    let rows: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("SELECT message, segments, message_stored FROM sms_events")
            .fetch_all(&pg)
            .await
            .unwrap();
    assert_eq!(rows.len(), 4);
    for (message, segments, stored) in &rows {
        assert_eq!(
            (message.as_str(), *segments, stored.as_deref()),
            ("", 1, Some("none"))
        );
    }
    let holders: Vec<String> = redis_text(&app)
        .await
        .into_iter()
        .filter(|(_, text)| text.contains("Your code is"))
        .map(|(key, _)| key)
        .collect();
    assert!(holders.is_empty(), "{holders:?}");
    let answers = operator_text(&app, &id).await;
    assert!(!answers.contains("Your code is"), "{answers}");
    pg.close().await;
    app.cleanup().await;
}
