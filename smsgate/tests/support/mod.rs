//! Shared test harness: a real smsgate `App` on a free port with a fresh Redis namespace (on
//! `REDIS_URL`, one Redis or a Redis Cluster), a private redis-server that tests may kill, and
//! readers for the event stream. Tests written for several partitions use
//! `SMSGATE_TEST_PARTITIONS` of them when set.

#![allow(dead_code, clippy::unwrap_used)]

pub mod projections;

use std::net::SocketAddr;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::StreamsInterface;
use fred::types::streams::XReadResponse;
use limiter::{Event, Layout, codec};
use smsgate::{App, Roles, Settings};
#[allow(unused_imports)]
pub use testkit::{
    PrivateRedis, cluster_url, database_server_url, drop_namespace, free_port, partitions,
    redis_url,
};
use tokio_util::sync::CancellationToken;

/// An admin token the server takes as one (16 characters or more, not an example value).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub struct TestApp {
    pub addr: SocketAddr,
    pub settings: Settings,
    pub http: reqwest::Client,
    stop: CancellationToken,
}

impl TestApp {
    pub async fn spawn(roles: Roles, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::defaults();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.redis_url = redis_url();
        let unique = uuid::Uuid::now_v7().simple().to_string();
        settings.namespace = format!("test-{unique}");
        let server = database_server_url();
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        settings.database_url = format!("{base}/smsgate_test_{unique}");
        settings.dashboard_dir = "/nonexistent".into();
        configure(&mut settings);
        let app = App::build(settings.clone(), roles)
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let stop = app.shutdown_token();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self {
            addr,
            settings,
            http: reqwest::Client::new(),
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn layout(&self) -> Layout {
        self.settings.layout()
    }

    pub async fn send(&self, to: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/sms"))
            .json(&serde_json::json!({"to": to, "message": "hello"}))
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` and parses the answer as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// POSTs `body` as is to `path`, with `content_type` when given.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    pub async fn redis(&self) -> Pool {
        limiter::connection::connect(&self.settings.redis_url, 1, Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// Every event of this app's namespace, per partition in stream order.
    pub async fn events(&self) -> Vec<(String, Event)> {
        let pool = self.redis().await;
        let redis = pool.next();
        let mut all = Vec::new();
        for stream in self.layout().streams() {
            let mut after = "0-0".to_string();
            loop {
                let page: XReadResponse<String, String, String, Vec<u8>> = redis
                    .xread_map(Some(10_000), None, stream.as_str(), after.as_str())
                    .await
                    .unwrap_or_default();
                let entries = page.into_values().next().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for (id, fields) in entries {
                    after = id.clone();
                    all.push((id, codec::decode(&fields[codec::EVENT_FIELD]).unwrap()));
                }
            }
        }
        all
    }

    /// Deletes the namespace's keys and the test database; call at the end of a test.
    pub async fn cleanup(self) {
        self.stop.cancel();
        // Give the app's workers their moment to let go of the database before it is dropped.
        tokio::time::sleep(Duration::from_millis(100)).await;
        testkit::drop_database(&self.settings.database_url).await;
        let pool = self.redis().await;
        drop_namespace(pool.next(), &self.settings.namespace).await;
    }
}

/// Asserts that `response` is a problem+json document with `status`, naming `field` when
/// given (`name` says which case failed); returns the document.
pub async fn expect_problem(
    response: reqwest::Response,
    status: u16,
    field: Option<&str>,
    name: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "{name}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{name}"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status, "{name}");
    assert!(
        problem["title"].is_string() && problem["detail"].is_string(),
        "{name}"
    );
    if let Some(field) = field {
        assert_eq!(problem["errors"][0]["field"], field, "{name}: {problem}");
    }
    problem
}

/// Two enforced rules, a shadow trial and two denied kinds of destination: the policy the
/// policy and metrics suites decide under.
pub const SEVERAL_RULES: &str = r#"
[[rule]]
name = "client"
key = ["ip", "to"]
limits = "3/1m"

[[rule]]
name = "number"
key = ["to"]
limits = "2/1m"

[[rule]]
name = "trial"
key = ["ip"]
limits = "1/1m"
mode = "shadow"

[destinations]
deny_countries = ["CU"]
deny_number_types = ["premium_rate"]
"#;
