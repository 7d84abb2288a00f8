//! The Twilio-compatible Messages API driven by the official SDKs, not by requests of our own
//! making: `twilio` from PyPI (`SMSGATE_TWILIO_PYTHON`, a Python with it installed) and from npm
//! (`SMSGATE_TWILIO_NODE_PATH`, the `node_modules` holding it), each through
//! `tests/twilio_sdk/sdk.{py,js}`, pointed at a running smsgate by its documented base-URL
//! override. `scripts/services.sh` (`ensure_twilio_sdks`) installs both.
//!
//! Each SDK: send → 201 with a sid it parses; the fourth within a minute → its own exception
//! with code 20429; wrong credentials → 20003; fetching returns the delivery status; its own
//! validator accepts smsgate's signed status callback (and refuses a tampered one); parallel
//! sends admit exactly what the policy allows, as `POST /api/sms` does, on the seed's rule (end
//! user's IP given) and on an `api_client` rule (no end-user IP: the ip rule does not apply).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use smsgate::app::Roles;
use support::TestApp;

const SECRET: &str = "test-api-secret-of-some-length";
const POLICY: &str = r#"
[[rule]]
name = "client"
key = ["ip", "to"]
limits = "3/1m,10/1d"

[[rule]]
name = "app"
key = ["api_client"]
limits = "12/1m"
"#;

#[derive(Clone, Copy)]
enum Sdk {
    Python,
    Node,
}

impl Sdk {
    fn run(self, command: &str, args: &Value) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/twilio_sdk");
        let mut cmd = match self {
            Sdk::Python => {
                let python =
                    std::env::var("SMSGATE_TWILIO_PYTHON").unwrap_or_else(|_| "python3".into());
                let mut cmd = std::process::Command::new(python);
                cmd.arg(format!("{dir}/sdk.py"));
                cmd
            }
            Sdk::Node => {
                let mut cmd = std::process::Command::new("node");
                if let Ok(path) = std::env::var("SMSGATE_TWILIO_NODE_PATH") {
                    cmd.env("NODE_PATH", path);
                }
                cmd.arg(format!("{dir}/sdk.js"));
                cmd
            }
        };
        let output = cmd
            .arg(command)
            .arg(args.to_string())
            .output()
            .expect("the SDK script runs (scripts/services.sh ensure_twilio_sdks installs it)");
        assert!(
            output.status.success(),
            "sdk {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "sdk {command} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    async fn run_async(self, command: &'static str, args: Value) -> Value {
        tokio::task::spawn_blocking(move || self.run(command, &args))
            .await
            .unwrap()
    }
}

/// Twilio-format callbacks as received: the URL they were sent to, the signature, the form.
type Received = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn callback_server() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/twilio/status",
            axum::routing::post(
                |State(received): State<Received>,
                 headers: HeaderMap,
                 Form(params): Form<Vec<(String, String)>>| async move {
                    let signature = headers
                        .get("x-twilio-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.lock().unwrap().push((signature, params));
                    ""
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/twilio/status?app=shop",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn spawn(sid: &str) -> TestApp {
    let dir = std::env::temp_dir().join(format!("smsgate-twilio-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let sid = sid.to_owned();
    TestApp::spawn(Roles::ALL, move |s| {
        s.policy_file = Some(policy);
        s.test_numbers = ingest::TestNumbers::parse("+1415555").unwrap();
        s.api_clients = sid;
        s.api_secret = Some(secrecy::SecretString::from(SECRET));
        s.delivery.outbox = dir.join("outbox.log");
        s.delivery.callback_allow = smsgate::cli::CidrList(vec!["127.0.0.0/8".parse().unwrap()]);
    })
    .await
}

/// The decisions the operator API lists (`GET /api/events`), once `expected` are there: the
/// stream itself is trimmed as soon as every group has read it.
async fn decisions(app: &TestApp, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = app.get_json("/api/events?limit=1000").await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.len() >= expected || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn codes(results: &Value) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in results.as_array().unwrap() {
        let key = if r["ok"] == true {
            "201".to_owned()
        } else {
            r["code"].to_string()
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

async fn sdk_end_to_end(sdk: Sdk, sid: &str) {
    let app = spawn(sid).await;
    let token = ingest::api_clients::derive_token(SECRET, sid, 1);
    let base = app.url("");
    let (callback_url, received) = callback_server().await;
    let args = |extra: Value| {
        let mut a = json!({"base_url": base, "sid": sid, "token": token});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };

    // Send → 201 with a sid the SDK parses, three times; the fourth within a minute → 20429.
    let mut sids = Vec::new();
    for i in 0..3 {
        let mut extra = json!({"to": "+14155550101", "body": format!("Your code is {i}"),
                               "from": "+14155550100", "end_user_ip": "203.0.113.10"});
        if i == 0 {
            extra["status_callback"] = json!(callback_url);
        }
        let sent = sdk.run_async("send", args(extra)).await;
        assert_eq!(sent["ok"], true, "{sent}");
        let message_sid = sent["sid"].as_str().unwrap().to_owned();
        assert!(
            message_sid.starts_with("SM") && message_sid.len() == 34,
            "{sent}"
        );
        assert_eq!(sent["status"], "queued");
        assert_eq!(sent["num_segments"], "1");
        assert_eq!(sent["account_sid"], sid);
        assert!(
            sent["date_created"].as_str().is_some(),
            "the SDK parsed the RFC 2822 date: {sent}"
        );
        sids.push(message_sid);
    }
    let fourth = sdk
        .run_async(
            "send",
            args(json!({"to": "+14155550101", "body": "again", "end_user_ip": "203.0.113.10"})),
        )
        .await;
    assert_eq!(fourth["ok"], false, "{fourth}");
    let exception = match sdk {
        Sdk::Python => "TwilioRestException",
        Sdk::Node => "RestException",
    };
    assert_eq!(fourth["exception"], exception, "{fourth}");
    assert_eq!(fourth["code"], 20429);
    assert_eq!(fourth["status"], 429);

    // Wrong credentials: the SDK's exception with 20003.
    let wrong = sdk
        .run_async(
            "send",
            json!({"base_url": base, "sid": sid, "token": "0".repeat(32),
                   "to": "+14155550101", "body": "x"}),
        )
        .await;
    assert_eq!(wrong["code"], 20003, "{wrong}");
    assert_eq!(wrong["status"], 401);

    // Fetching the message returns its delivery status (the log provider delivers at once).
    let deadline = Instant::now() + Duration::from_secs(30);
    let fetched = loop {
        let fetched = sdk
            .run_async("fetch", args(json!({"message_sid": sids[0]})))
            .await;
        if fetched["status"] == "delivered" || Instant::now() > deadline {
            break fetched;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fetched["ok"], true, "{fetched}");
    assert_eq!(fetched["status"], "delivered", "{fetched}");
    assert_eq!(fetched["sid"], sids[0]);
    assert!(fetched["date_updated"].as_str().is_some(), "{fetched}");
    let unknown = sdk
        .run_async(
            "fetch",
            args(json!({"message_sid": "SM0123456789abcdef0123456789abcdef"})),
        )
        .await;
    assert_eq!(unknown["code"], 20404, "{unknown}");

    // The status callback, in Twilio's format, passes the SDK's own validator.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (signature, params) = loop {
        let delivered = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, p)| {
                p.iter()
                    .any(|(k, v)| k == "MessageStatus" && v == "delivered")
            })
            .cloned();
        if let Some(found) = delivered {
            break found;
        }
        assert!(Instant::now() < deadline, "no delivered callback arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("MessageSid").as_deref(), Some(sids[0].as_str()));
    assert_eq!(param("AccountSid").as_deref(), Some(sid));
    assert_eq!(param("To").as_deref(), Some("+14155550101"));
    assert_eq!(param("From").as_deref(), Some("+14155550100"));
    let as_map: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let validated = sdk
        .run_async(
            "validate",
            json!({"token": token, "url": callback_url, "params": as_map, "signature": signature}),
        )
        .await;
    assert_eq!(validated["valid"], true, "{validated}");
    let mut tampered = as_map.clone();
    tampered.insert("MessageStatus".into(), "failed".into());
    let refused = sdk
        .run_async(
            "validate",
            json!({"token": token, "url": callback_url, "params": tampered, "signature": signature}),
        )
        .await;
    assert_eq!(
        refused["valid"], false,
        "a tampered callback must not validate"
    );

    // Concurrency on the seed's rule (end user's IP given): 10 parallel sends, exactly 3 in.
    let burst = sdk
        .run_async(
            "burst",
            args(
                json!({"n": 10, "to": vec!["+14155550102"; 10], "body": "burst",
                        "end_user_ip": "203.0.113.20"}),
            ),
        )
        .await;
    let counts = codes(&burst);
    assert_eq!(counts.get("201"), Some(&3), "{burst}");
    assert_eq!(counts.get("20429"), Some(&7), "{burst}");

    // Without an end-user IP the ip rule does not apply, the api_client rule does: 12 a
    // minute, 6 used above, so exactly 6 of 10 parallel sends to distinct numbers get in.
    let numbers: Vec<String> = (0..10).map(|i| format!("+141555502{i:02}")).collect();
    let burst = sdk
        .run_async(
            "burst",
            args(json!({"n": 10, "to": numbers, "body": "app"})),
        )
        .await;
    let counts = codes(&burst);
    assert_eq!(counts.get("201"), Some(&6), "{burst}");
    assert_eq!(counts.get("20429"), Some(&4), "{burst}");

    // The events record the API client; the unattributed ones the client's own address.
    let events = decisions(&app, 24).await;
    let from_sdk: Vec<_> = events.iter().filter(|e| e["api_client"] == sid).collect();
    assert_eq!(
        from_sdk.len(),
        4 + 10 + 10,
        "every SDK decision is an event"
    );
    let unattributed: Vec<_> = from_sdk
        .iter()
        .filter(|e| e["ip_unattributed"] == true)
        .collect();
    assert_eq!(unattributed.len(), 10);
    assert!(unattributed.iter().all(|e| e["ip"] == "127.0.0.1"));
    assert!(from_sdk.iter().any(|e| e["ip"] == "203.0.113.20"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_sends_is_refused_reads_status_and_validates_callbacks() {
    sdk_end_to_end(Sdk::Python, "AC0000000000000000000000000000a001").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_sdk_sends_is_refused_reads_status_and_validates_callbacks() {
    sdk_end_to_end(Sdk::Node, "AC0000000000000000000000000000b002").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_sms_admits_exactly_as_many_as_the_sdks_under_the_same_concurrency() {
    let app = spawn("AC0000000000000000000000000000c003").await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (http, url) = (app.http.clone(), app.url("/api/sms"));
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"to": "+14155550102", "message": "burst"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        accepted += usize::from(t.await.unwrap() == 202);
    }
    assert_eq!(
        accepted, 3,
        "the seed's rule admits 3 a minute, as for the SDKs"
    );
    let events = decisions(&app, 10).await;
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e.get("api_client").is_none()));
    app.cleanup().await;
}
