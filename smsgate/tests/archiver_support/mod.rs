//! Shared by the archiver process tests: a fresh Redis namespace and Postgres database per
//! test (removed on drop, also on panic), `smsgate` child processes, and events made by the
//! real limiter.

#![allow(dead_code, clippy::unwrap_used)]

#[allow(unused_imports)]
pub use testkit::{PgServer, Process, database_server_url, free_port, redis_url};

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::{Layout, Policy, RateLimiter, SmsRequest};
use sqlx::PgPool;

pub struct Env {
    pub namespace: String,
    pub layout: Layout,
    pub redis: Pool,
    /// The test database's URL (created by the first smsgate process that starts).
    pub database_url: String,
    /// The Redis this environment's processes use (`REDIS_URL`, or a private server's).
    pub redis_url: String,
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
        Self::with_redis(server_url, &redis_url(), partitions).await
    }

    /// An environment whose processes use the Redis at `redis_url` (e.g. a `PrivateRedis`).
    pub async fn with_redis(server_url: &str, redis_url: &str, partitions: u16) -> Self {
        let namespace = testkit::namespace();
        let db_name = format!("smsgate_test_{}", uuid::Uuid::now_v7().simple());
        Self {
            layout: Layout::new(namespace.clone(), partitions),
            namespace,
            redis: testkit::redis_at(redis_url).await,
            database_url: testkit::url_with_database(server_url, &db_name),
            redis_url: redis_url.to_owned(),
        }
    }

    /// `smsgate <args>` on this namespace and database, with extra environment.
    pub fn smsgate(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smsgate"));
        command
            .args(args)
            .env("REDIS_URL", &self.redis_url)
            .env("DATABASE_URL", &self.database_url)
            .env("SMSGATE_NAMESPACE", &self.namespace)
            .env("SMSGATE_PARTITIONS", self.layout.partitions().to_string())
            .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
            .env("SMSGATE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env_remove("SMSGATE_ADMIN_TOKEN")
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
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(
        testkit::eventually(timeout, check).await,
        "timed out waiting for: {what}"
    );
}

impl Drop for Env {
    fn drop(&mut self) {
        let url = self.database_url.clone();
        let (namespace, redis) = (self.namespace.clone(), self.redis_url.clone());
        testkit::block_on_cleanup(async move {
            testkit::drop_database(&url).await;
            let pool = testkit::redis_at(&redis).await;
            testkit::drop_namespace(pool.next(), &namespace).await;
        });
    }
}
