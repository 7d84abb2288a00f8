//! Test support shared by every integration suite of the workspace (a dev-dependency only,
//! never in a release build): the Redis and Postgres the tests talk to, a fresh namespace and
//! a fresh database per test (removed on drop, also when the test panics), and servers of a
//! test's own that it may kill.
//!
//! # Layout
//! - this file: where the servers are (`REDIS_URL`, `DATABASE_URL`, `SMSGATE_TEST_PARTITIONS`,
//!   `SMSGATE_CLUSTER_URL`), [`redis`], [`namespace`], [`layout`], [`drop_namespace`],
//!   [`stream_events`], [`eventually`], [`free_port`], [`role_command`], [`Process`].
//! - `database`: [`Database`], a scratch database on the test server.
//! - `pg_server`: [`PgServer`], a private PostgreSQL to stop and resume.
//! - `redis_server`: [`PrivateRedis`], a private redis-server to kill and restart.

#![allow(clippy::unwrap_used)]

mod database;
mod pg_server;
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::interfaces::StreamsInterface;
use limiter::{Event, Layout, codec};

pub use database::{Database, drop_database, url_with_database};
pub use pg_server::PgServer;
pub use redis_server::PrivateRedis;

/// The Redis tests use: `REDIS_URL`, one Redis or a Redis Cluster (`redis-cluster://…`).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Postgres server tests use; each test gets a database of its own on it.
pub fn database_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis Cluster of the cluster tests (`SMSGATE_CLUSTER_URL`, set by `scripts/test` from
/// `scripts/cluster.sh start`), or `None` with the reason printed: those tests then pass
/// without checking anything, which the output says.
pub fn cluster_url() -> Option<String> {
    let url = std::env::var("SMSGATE_CLUSTER_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED: SMSGATE_CLUSTER_URL is not set; start a cluster with `scripts/cluster.sh start DIR` and set it to the URL printed"
        );
    }
    url
}

/// `default`, or `SMSGATE_TEST_PARTITIONS` for a test written for several partitions (the
/// cluster run sets 16).
pub fn partitions(default: u16) -> u16 {
    let configured = std::env::var("SMSGATE_TEST_PARTITIONS").ok();
    match configured.and_then(|p| p.parse().ok()) {
        Some(n) if default > 1 => n,
        _ => default,
    }
}

/// A pool of 4 on [`redis_url`]; panics when Redis does not answer.
pub async fn redis() -> Pool {
    redis_at(&redis_url()).await
}

/// A pool of 4 on `url`; panics when it does not answer.
pub async fn redis_at(url: &str) -> Pool {
    let pool = limiter::connection::connect(url, 4, Duration::from_secs(5))
        .await
        .expect("redis url");
    assert!(
        limiter::connection::is_up(&pool),
        "Redis is not reachable at {url}"
    );
    pool
}

/// A fresh key prefix, so tests share one Redis without seeing each other.
pub fn namespace() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

/// A key layout on a fresh [`namespace`] with [`partitions`]`(default)` partitions.
pub fn layout(default: u16) -> Layout {
    Layout::new(namespace(), partitions(default))
}

/// Every event on every partition's stream as `(partition, stream id, event)`, in stream
/// order per partition. Entries that are not events (a test's deliberate garbage) are left out.
pub async fn stream_events(redis: &Client, layout: &Layout) -> Vec<(u16, String, Event)> {
    const PAGE: u64 = 10_000;
    let mut all = Vec::new();
    for p in 0..layout.partitions() {
        let mut start = "-".to_string();
        loop {
            let page: Vec<(String, std::collections::HashMap<String, Bytes>)> = redis
                .xrange(layout.stream(p), start.as_str(), "+", Some(PAGE))
                .await
                .unwrap();
            let full = page.len() as u64 == PAGE;
            for (id, fields) in page {
                start = format!("({id}");
                if let Some(event) = fields
                    .get(codec::EVENT_FIELD)
                    .and_then(|bytes| codec::decode(bytes).ok())
                {
                    all.push((p, id, event));
                }
            }
            if !full {
                break;
            }
        }
    }
    all
}

/// Deletes every key of `namespace`, on every primary of a cluster.
pub async fn drop_namespace(redis: &Client, namespace: &str) {
    let _ = limiter::connection::drop_namespace(redis, namespace).await;
}

/// Runs `cleanup` to completion from a `Drop`: outside async, maybe while panicking, on a
/// runtime of its own.
pub fn block_on_cleanup<F>(cleanup: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(cleanup);
    });
    let _ = thread.join();
}

/// Polls `check` every 50 ms until it holds (true) or `within` passes (false).
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bin role` (the smsgate binary a suite was built with) on Redis `redis_url`, namespace
/// `namespace` over `partitions` partitions, listening on loopback `port`, without an admin
/// token or a dashboard, its output discarded; the caller adds what its role needs and spawns it.
pub fn role_command(
    bin: &str,
    role: &str,
    redis_url: &str,
    namespace: &str,
    partitions: u16,
    port: u16,
) -> Command {
    let mut command = Command::new(bin);
    command
        .arg(role)
        .env("REDIS_URL", redis_url)
        .env("SMSGATE_NAMESPACE", namespace)
        .env("SMSGATE_PARTITIONS", partitions.to_string())
        .env("SMSGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
        .env_remove("SMSGATE_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Kills the child on drop, so a failing test leaves no process behind.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
