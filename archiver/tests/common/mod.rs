//! Test harness: a real Redis (`REDIS_URL`) with a fresh namespace, and a real Postgres
//! (`DATABASE_URL` as the server to use) with a fresh database per test, both removed when the
//! harness drops — also when the test panics.

#![allow(dead_code, clippy::unwrap_used)]

#[allow(unused_imports)]
pub use testkit::{PgServer, redis, redis_url};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use archiver::{Archiver, ArchiverConfig};
use fred::clients::{Client, Pool};
use fred::interfaces::StreamsInterface;
use limiter::{Event, Layout, Policy, RateLimiter, SmsRequest, codec};
use sqlx::PgPool;
use testkit::Database;

pub struct Harness {
    pub redis: Pool,
    pub layout: Layout,
    pub pg: PgPool,
    pub database_url: String,
    database: Database,
}

impl Harness {
    pub async fn new(partitions: u16) -> Self {
        Self::on(&testkit::database_server_url(), partitions).await
    }

    /// A harness whose database lives on the Postgres server at `base_url`.
    pub async fn on(base_url: &str, partitions: u16) -> Self {
        let database = Database::on(base_url);
        let pg = archiver::connect_postgres(&database.url)
            .await
            .expect("postgres reachable and the database created");
        Self {
            redis: redis().await,
            layout: Layout::new(testkit::namespace(), partitions),
            pg,
            database_url: database.url.clone(),
            database,
        }
    }

    pub fn config(&self, consumer: &str) -> ArchiverConfig {
        ArchiverConfig {
            consumer: consumer.to_owned(),
            batch_size: 1_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            ..ArchiverConfig::default()
        }
    }

    pub fn archiver(&self, config: ArchiverConfig) -> Archiver {
        Archiver::new(
            self.redis.clone(),
            self.pg.clone(),
            self.layout.clone(),
            config,
        )
    }

    pub fn client(&self) -> &Client {
        self.redis.next()
    }

    /// Makes `n` real decisions through the limiter (policy `3/1m`, 97 clients, so a mix of
    /// accepted and rejected, IPv4 and IPv6, with and without sender), 16 at a time.
    pub async fn decide(&self, n: usize) {
        let limiter = Arc::new(RateLimiter::new(
            Policy::parse("3/1m").unwrap(),
            self.layout.clone(),
        ));
        let workers = 16;
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let (pool, limiter) = (self.redis.clone(), limiter.clone());
                tokio::spawn(async move {
                    let client = &pool.clients()[w % pool.clients().len()];
                    for i in (w..n).step_by(workers) {
                        let c = i % 97;
                        let ip = if c % 3 == 0 {
                            format!("2001:db8::{c:x}")
                        } else {
                            format!("198.51.100.{c}")
                        };
                        let to = format!("+1415555{:04}", c);
                        let message = format!("message {i} — grüße ✓");
                        let from = (i % 2 == 0).then_some("Acme");
                        let request = SmsRequest {
                            ip: ip.parse().unwrap(),
                            to: &to,
                            from,
                            message: &message,
                            segments: 1 + (i % 3) as u32,
                        };
                        limiter.decide(client, &request).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// Every decodable event on every stream, by partition and stream entry id.
    pub async fn stream_events(&self) -> HashMap<(u16, String), Event> {
        let mut all = HashMap::new();
        for p in 0..self.layout.partitions() {
            let stream = self.layout.stream(p);
            let mut after = "0-0".to_string();
            loop {
                let page: fred::types::Value = self
                    .client()
                    .xread(Some(5_000), None, stream.as_str(), after.as_str())
                    .await
                    .unwrap();
                let entries: Vec<eventlog::RawEntry> = eventlog::parse_xread(page)
                    .unwrap()
                    .into_iter()
                    .flat_map(|(_, entries)| entries)
                    .collect();
                let Some(last) = entries.last() else {
                    break;
                };
                after = last.id.to_string();
                for entry in entries {
                    if let Some(bytes) = entry.field(codec::EVENT_FIELD) {
                        match codec::decode(bytes) {
                            Ok(event) => {
                                all.insert((p, entry.id.to_string()), event);
                            }
                            Err(e) => eprintln!("undecodable {}: {e}", entry.id),
                        }
                    }
                }
            }
        }
        all
    }

    /// Reads entries of partition `p` as `consumer` of the archiver group (creating it), the
    /// way a consumer that then crashes would: nothing is acked.
    pub async fn read_as(
        &self,
        p: u16,
        consumer: &str,
        from: eventlog::From,
        count: usize,
    ) -> Vec<eventlog::RawEntry> {
        let stream = self.layout.stream(p);
        let group = eventlog::Group {
            stream: &stream,
            group: archiver::GROUP,
        };
        group.ensure(self.client()).await.unwrap();
        group
            .read(self.client(), consumer, from, count)
            .await
            .unwrap()
    }

    pub async fn xlen(&self, p: u16) -> u64 {
        self.client().xlen(self.layout.stream(p)).await.unwrap()
    }

    pub async fn rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM sms_events")
            .fetch_one(&self.pg)
            .await
            .unwrap()
    }

    /// Entries of partition `p`'s dead-letter stream, as field maps.
    pub async fn dead_letters(&self, p: u16) -> Vec<HashMap<String, Vec<u8>>> {
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> = self
            .client()
            .xrange_values(self.layout.dead_letters(p), "-", "+", None)
            .await
            .unwrap();
        entries.into_iter().map(|(_, fields)| fields).collect()
    }
}

impl Drop for Harness {
    // The database drops itself after this (a field); the namespace is removed here.
    fn drop(&mut self) {
        let namespace = self.layout.namespace().to_owned();
        testkit::block_on_cleanup(async move {
            let pool = redis().await;
            testkit::drop_namespace(pool.next(), &namespace).await;
        });
    }
}
