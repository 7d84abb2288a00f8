//! Shared by the archiver process tests: a fresh Redis namespace and Postgres database per
//! test (removed on drop, also on panic), `smsgate` child processes, and events made by the
//! real limiter.

#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../archiver/tests/common/pg_server.rs"]
pub mod pg_server;

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::{KeysInterface, LuaInterface, StreamsInterface};
use fred::types::Value;
use limiter::{Layout, Policy, RateLimiter, SmsRequest};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgPool};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn database_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Env {
    pub namespace: String,
    pub layout: Layout,
    pub redis: Pool,
    /// The test database's URL (created by the first smsgate process that starts).
    pub database_url: String,
    server_url: String,
    db_name: String,
}

impl Env {
    /// `partitions`, or `SMSGATE_TEST_PARTITIONS` for a test written for several (the
    /// cluster run sets 16).
    pub async fn new(partitions: u16) -> Self {
        let configured = std::env::var("SMSGATE_TEST_PARTITIONS").ok();
        let partitions = match configured.and_then(|p| p.parse().ok()) {
            Some(n) if partitions > 1 => n,
            _ => partitions,
        };
        Self::on(&database_server_url(), partitions).await
    }

    pub async fn on(server_url: &str, partitions: u16) -> Self {
        let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
        let db_name = format!("smsgate_test_{}", uuid::Uuid::now_v7().simple());
        let options = PgConnectOptions::from_str(server_url).unwrap();
        let database_url = format!(
            "postgres://{}@{}:{}/{db_name}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        );
        let redis = limiter::connection::connect(&redis_url(), 4, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(limiter::connection::is_up(&redis), "redis is not reachable");
        Self {
            layout: Layout::new(namespace.clone(), partitions),
            namespace,
            redis,
            database_url,
            server_url: server_url.to_owned(),
            db_name,
        }
    }

    /// `smsgate <args>` on this namespace and database, with extra environment.
    pub fn smsgate(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smsgate"));
        command
            .args(args)
            .env("REDIS_URL", redis_url())
            .env("DATABASE_URL", &self.database_url)
            .env("SMSGATE_NAMESPACE", &self.namespace)
            .env("SMSGATE_PARTITIONS", self.layout.partitions().to_string())
            .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
            .env("SMSGATE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env_remove("SMSGATE_ADMIN_TOKEN")
            .env_remove("SMSGATE_FAULT_PAUSE")
            .env_remove("SMSGATE_ARCHIVE_CLAIM_IDLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        command.spawn().unwrap()
    }

    /// `smsgate archiver --once` to completion; panics unless it exits 0.
    pub fn archive_once(&self, env: &[(&str, &str)]) {
        let status = self.smsgate(&["archiver", "--once"], env).wait().unwrap();
        assert!(status.success(), "smsgate archiver --once failed: {status}");
    }

    pub async fn pg(&self) -> PgPool {
        archiver::connect_postgres(&self.database_url)
            .await
            .unwrap()
    }

    /// Makes `n` real decisions through the limiter, 16 at a time.
    pub async fn decide(&self, n: usize) {
        let limiter = Arc::new(RateLimiter::new(
            Policy::parse("3/1m").unwrap(),
            self.layout.clone(),
        ));
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let (pool, limiter) = (self.redis.clone(), limiter.clone());
                tokio::spawn(async move {
                    for i in (w..n).step_by(16) {
                        let to = format!("+1415555{:04}", i % 101);
                        let message = format!("message {i}");
                        let request = SmsRequest {
                            ip: format!("198.51.100.{}", i % 7).parse().unwrap(),
                            to: &to,
                            from: None,
                            message: &message,
                            segments: 1,
                        };
                        limiter.decide(pool.next(), &request).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// Entries the archiver group holds pending, over all partitions.
    pub async fn pending(&self) -> u64 {
        let mut total = 0;
        for stream in self.layout.streams() {
            let summary: Value = self
                .redis
                .next()
                .xpending(stream, archiver::GROUP, ())
                .await
                .unwrap_or(Value::Null);
            total += summary
                .into_array()
                .first()
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
        total
    }

    pub async fn xlen(&self) -> u64 {
        let mut total = 0;
        for stream in self.layout.streams() {
            let n: u64 = self.redis.next().xlen(stream).await.unwrap();
            total += n;
        }
        total
    }
}

/// Rows and distinct ids in `sms_events` (0 when the table does not exist yet).
pub async fn counts(pg: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM sms_events")
        .fetch_one(pg)
        .await
        .unwrap_or((0, 0))
}

/// Polls `check` every 50 ms for up to `timeout`; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

impl Drop for Env {
    fn drop(&mut self) {
        let (server, db, namespace) = (
            self.server_url.clone(),
            self.db_name.clone(),
            self.namespace.clone(),
        );
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnectOptions::from_str(&server).unwrap().connect().await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
                    let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                }
                let Ok(pool) =
                    limiter::connection::connect(&redis_url(), 1, Duration::from_secs(2)).await
                else {
                    return;
                };
                let keys: Vec<String> = pool
                    .next()
                    .eval(
                        "return redis.call('KEYS', ARGV[1])",
                        Vec::<String>::new(),
                        vec![format!("{namespace}:*")],
                    )
                    .await
                    .unwrap_or_default();
                for key in keys {
                    let _: () = pool.next().del(key).await.unwrap_or(());
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Kills the child on drop, so a failing test leaves no process behind.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
