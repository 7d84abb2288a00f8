//! What a flood of rejected requests costs: `FLOOD_REQUESTS` (default 100,000) requests with
//! `FLOOD_BODY_CHARS`-character bodies (default 1,600) for one client whose quota is spent, so
//! every one is rejected; then Redis's growth (the stream, exactly, with `MEMORY USAGE`, and
//! the server's `used_memory`, which other clients of a shared Redis also move), the archive's
//! growth once the archiver has drained them into a scratch database, and Redis after the trim.
//!
//! ```text
//! cargo run -p archiver --example flood
//! ```
//!
//! Uses only what the decision script and the archiver offered before retention existed, so
//! the same file measures an older tree too. `REDIS_URL` and `DATABASE_URL` (the server; a
//! scratch database is created on it and dropped) as everywhere.

use std::error::Error;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use archiver::{Archiver, ArchiverConfig};
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::{CustomCommand, Value};
use limiter::{Layout, Outcome, Policy, RateLimiter, SmsRequest};
use sqlx::postgres::PgConnectOptions;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn command(
    redis: &Client,
    name: &'static str,
    args: Vec<String>,
) -> Result<Value, Box<dyn Error>> {
    Ok(redis
        .custom(CustomCommand::new_static(name, None, false), args)
        .await?)
}

/// Bytes Redis holds for the namespace: `MEMORY USAGE` of each key, every element counted.
async fn namespace_bytes(redis: &Client, layout: &Layout) -> Result<i64, Box<dyn Error>> {
    let keys = command(redis, "KEYS", vec![format!("{}:*", layout.namespace())]).await?;
    let keys: Vec<String> = keys.convert()?;
    let mut total = 0;
    for key in keys {
        let usage = command(
            redis,
            "MEMORY",
            vec!["USAGE".into(), key, "SAMPLES".into(), "0".into()],
        )
        .await?;
        total += usage.as_i64().unwrap_or(0);
    }
    Ok(total)
}

async fn used_memory(redis: &Client) -> Result<i64, Box<dyn Error>> {
    let info: String = command(redis, "INFO", vec!["memory".into()])
        .await?
        .convert()?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let requests: usize = env_or("FLOOD_REQUESTS", "100000").parse()?;
    let chars: usize = env_or("FLOOD_BODY_CHARS", "1600").parse()?;
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let server = env_or(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let layout = Layout::new(format!("flood-{unique}"), 1);
    let pool = limiter::connection::connect(&redis_url, 4, Duration::from_secs(5)).await?;
    let redis = pool.next().clone();
    let limiter = Arc::new(RateLimiter::new(Policy::parse("1/1d")?, layout.clone()));
    // A one-time code and filler to the length asked: what a pumping flood would send.
    let body: Arc<str> = format!("Your code is 493817. {}", "x".repeat(chars))
        .chars()
        .take(chars)
        .collect::<String>()
        .into();
    fn request(message: &str) -> SmsRequest<'_> {
        SmsRequest {
            ip: std::net::IpAddr::from([198, 51, 100, 9]),
            to: "+14155550123",
            from: None,
            message,
            segments: 11,
        }
    }
    // Spends the client's quota, so every request of the flood is rejected.
    let first = limiter.decide(&redis, &request(&body)).await?;
    assert_eq!(first.outcome, Outcome::Accepted);
    let redis_before = namespace_bytes(&redis, &layout).await?;
    let server_before = used_memory(&redis).await?;

    let workers = 16;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (pool, limiter, body) = (pool.clone(), limiter.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let redis = pool.next().clone();
            let mut rejected = 0usize;
            for _ in (w..requests).step_by(workers) {
                let decision = limiter.decide(&redis, &request(&body)).await?;
                rejected += usize::from(decision.outcome == Outcome::Rejected);
            }
            Ok::<_, limiter::LimiterError>(rejected)
        }));
    }
    let mut rejected = 0;
    for task in tasks {
        rejected += task.await??;
    }
    assert_eq!(rejected, requests, "every request of the flood is rejected");
    let redis_after = namespace_bytes(&redis, &layout).await?;
    let server_after = used_memory(&redis).await?;

    // Dropped with the scratch database at the end.
    let database = testkit::Database::on(&server);
    let options = PgConnectOptions::from_str(&database.url)?;
    let pg = archiver::connect_with(options).await?;
    let size = "SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM pg_class \
                WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace \
                AND relname <> '_sqlx_migrations'";
    let archive_before: i64 = sqlx::query_scalar(size).fetch_one(&pg).await?;
    let archiver = Archiver::new(
        pool.clone(),
        pg.clone(),
        layout.clone(),
        ArchiverConfig {
            consumer: "flood".into(),
            ..ArchiverConfig::default()
        },
    );
    let report = archiver.drain().await?;
    let archive_after: i64 = sqlx::query_scalar(size).fetch_one(&pg).await?;
    let redis_trimmed = namespace_bytes(&redis, &layout).await?;
    let per = |bytes: i64| bytes as f64 / requests as f64;
    println!("flood: {requests} rejected requests, {chars}-character bodies");
    println!(
        "redis, namespace (MEMORY USAGE): {} -> {} bytes: {:.0} bytes per rejected request until archived",
        redis_before,
        redis_after,
        per(redis_after - redis_before)
    );
    println!(
        "redis, server used_memory (shared, noisy): {:.0} bytes per request",
        per(server_after - server_before)
    );
    println!(
        "archive: {} rows in, {} -> {} bytes (tables, indexes, TOAST): {:.0} bytes per rejected request",
        report.inserted,
        archive_before,
        archive_after,
        per(archive_after - archive_before)
    );
    println!("redis after archiving and trimming: {redis_trimmed} bytes for the namespace");
    pg.close().await;
    drop(database);
    limiter::connection::drop_namespace(&redis, layout.namespace()).await?;
    Ok(())
}
