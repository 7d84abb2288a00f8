//! Shared by the dispatcher's integration tests: a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379) with a fresh namespace per test, decisions made by the limiter's real script,
//! Stoplight Prism serving Twilio's published OpenAPI document (`--errors`: a request that
//! breaks the spec is answered 422, which the provider takes as a permanent failure, so the
//! test sees it), and a small fault proxy in front of Prism that records every request and can
//! answer 500 or 429 for a while instead of passing it on.

#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dispatcher::twilio::{Sender, TwilioConfig, TwilioProvider};
use dispatcher::{Dispatcher, DispatcherConfig, Provider};
use fred::clients::Pool;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::delivery::{Deliverable, decode_deliverable};
use limiter::{Layout, Policy, RateLimiter, SmsRequest};

pub const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const TOKEN: &str = "test-auth-token-0123456789";
pub const FROM: &str = "+15005550006";

pub use testkit::{redis, redis_url};

/// A fresh namespace on one partition.
pub fn layout() -> Layout {
    testkit::layout(1)
}

/// Decides `n` requests of distinct clients twice each under `1/1d`: the first of each is
/// accepted, the second rejected. Returns the accepted (to, body) pairs.
pub async fn accepted_and_rejected(
    pool: &Pool,
    layout: &Layout,
    n: usize,
    callback: Option<&str>,
) -> Vec<(String, String)> {
    let limiter = RateLimiter::new(Policy::parse("1/1d").unwrap(), layout.clone());
    let mut accepted = Vec::new();
    for i in 0..n {
        let to = format!("+1415555{:04}", i % 10_000);
        let ip = format!("10.9.{}.{}", i / 250, i % 250).parse().unwrap();
        for round in 0..2 {
            let body = format!("code {i} round {round}");
            let request = SmsRequest {
                ip,
                to: &to,
                from: None,
                message: &body,
                segments: 1,
            };
            let decision = limiter
                .decide_with(
                    pool.next(),
                    &request,
                    &limiter::Context {
                        status_callback: callback,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            if decision.outcome == limiter::Outcome::Accepted {
                accepted.push((to.clone(), body));
            }
        }
    }
    accepted
}

/// Every deliverable decision on `partition`'s stream, in order (what the consumer group would
/// hand the dispatcher).
pub async fn deliverables(pool: &Pool, layout: &Layout, partition: u16) -> Vec<Deliverable> {
    let entries: Vec<(String, std::collections::HashMap<String, Value>)> = pool
        .next()
        .xrange(layout.stream(partition), "-", "+", None)
        .await
        .unwrap();
    entries
        .into_iter()
        .filter_map(|(_, fields)| {
            let bytes = fields.get("e")?.as_bytes()?.to_vec();
            decode_deliverable(&bytes).unwrap()
        })
        .collect()
}

/// Hands every accepted decision of every partition to `dispatcher`, `batch` at a time.
pub async fn deliver_stream(dispatcher: &Dispatcher, pool: &Pool, layout: &Layout, batch: usize) {
    for partition in 0..layout.partitions() {
        let all = deliverables(pool, layout, partition).await;
        for chunk in all.chunks(batch) {
            dispatcher.deliver(partition, chunk).await.unwrap();
        }
    }
}

pub fn fast_config() -> DispatcherConfig {
    DispatcherConfig {
        retry_min: Duration::from_millis(500),
        retry_max: Duration::from_secs(8),
        lease: Duration::from_secs(20),
        tps: 2_000,
        ..DispatcherConfig::default()
    }
}

pub fn twilio(base_url: &str) -> Arc<dyn Provider> {
    Arc::new(
        TwilioProvider::new(TwilioConfig {
            account_sid: ACCOUNT.into(),
            auth_token: TOKEN.into(),
            sender: Sender::From(FROM.into()),
            base_url: base_url.into(),
            status_callback: Some("http://127.0.0.1:9/api/providers/twilio/status".into()),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        })
        .unwrap(),
    )
}

pub use testkit::{eventually, free_port};

/// Prism mocking Twilio's API v2010 from its published OpenAPI document; killed on drop.
pub struct Prism {
    pub url: String,
    _child: tokio::process::Child,
}

pub fn twilio_spec() -> PathBuf {
    if let Ok(path) = std::env::var("SMSGATE_TWILIO_SPEC") {
        return path.into();
    }
    // CI clones the repository with shared/ beside it.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs/twilio_api_v2010.json")
}

impl Prism {
    pub async fn start() -> Self {
        let prism = std::env::var("SMSGATE_PRISM").unwrap_or_else(|_| "prism".into());
        let spec = twilio_spec();
        assert!(
            spec.exists(),
            "Twilio's OpenAPI document is not at {}",
            spec.display()
        );
        let port = free_port();
        let child = tokio::process::Command::new(&prism)
            .args([
                "mock",
                "--errors",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .arg(&spec)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {prism} (npm @stoplight/prism-cli): {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let up = eventually(Duration::from_secs(60), || {
            let http = http.clone();
            let url = url.clone();
            async move { http.get(&url).send().await.is_ok() }
        })
        .await;
        assert!(up, "prism did not start on {url}");
        Self { url, _child: child }
    }
}

/// What the proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    ServerError,
    Throttle,
    Refuse,
}

/// One request the provider made, as the proxy saw it, and Prism's answer.
#[derive(Clone, Debug)]
pub struct Seen {
    pub form: Vec<(String, String)>,
    pub answered: u16,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    fault: Arc<Mutex<(Fault, Option<Instant>)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The fault proxy in front of Prism.
pub struct FaultProxy {
    pub url: String,
    state: ProxyState,
    _server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let state = ProxyState {
            upstream: upstream.to_owned(),
            // A fresh connection per request: reusing one Prism (Node) is closing as idle
            // resets it, which would be the proxy's fault, not the provider's.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            fault: Arc::new(Mutex::new((Fault::Pass, None))),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new().fallback(forward).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            state,
            _server: server,
        }
    }

    /// Answers with `fault` for `duration` (forever when `None`), then passes again.
    pub fn fail(&self, fault: Fault, duration: Option<Duration>) {
        *self.state.fault.lock().unwrap() = (fault, duration.map(|d| Instant::now() + d));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn forward(
    State(state): State<ProxyState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let fault = {
        let mut guard = state.fault.lock().unwrap();
        if guard.1.is_some_and(|until| Instant::now() >= until) {
            *guard = (Fault::Pass, None);
        }
        guard.0
    };
    let record = |answered: u16| {
        state.seen.lock().unwrap().push(Seen {
            form: form.clone(),
            answered,
        })
    };
    match fault {
        Fault::ServerError => {
            record(500);
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream trouble").into_response();
        }
        Fault::Throttle => {
            record(429);
            let body = r#"{"code":20429,"message":"Too Many Requests","status":429}"#;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("content-type", "application/json")],
                body,
            )
                .into_response();
        }
        Fault::Refuse => {
            record(400);
            let body = r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#;
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                body,
            )
                .into_response();
        }
        Fault::Pass => {}
    }
    let mut request = state
        .http
        .post(format!(
            "{}{}",
            state.upstream,
            uri.path_and_query().unwrap()
        ))
        .body(body.clone());
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.as_bytes());
        }
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    record(status);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        bytes,
    )
        .into_response()
}
