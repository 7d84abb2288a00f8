//! The archive benchmark behind `smsgate bench --mode archive`: how fast a pre-filled stream
//! drains into Postgres through the archiver (read, decode, insert, ack, trim), against a
//! baseline measured in the same run: the same rows written with a plain `COPY` into a table
//! shaped like `sms_events` (same primary key and indexes).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use archiver::{Archiver, ArchiverConfig, Row};
use fred::clients::Pool;
use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::Value;
use limiter::event::SCHEMA_VERSION;
use limiter::{Event, Layout, Outcome, codec};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

use super::scratch::Scratch;

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub events: usize,
    pub fill: Duration,
    pub archive: Duration,
    pub copy: Duration,
}

impl BenchReport {
    pub fn archive_rate(&self) -> f64 {
        self.events as f64 / self.archive.as_secs_f64()
    }

    pub fn copy_rate(&self) -> f64 {
        self.events as f64 / self.copy.as_secs_f64()
    }

    /// Archive throughput as a fraction of the plain-COPY baseline.
    pub fn ratio(&self) -> f64 {
        self.archive_rate() / self.copy_rate()
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "archive: {} events in {:.2?} = {:.0} events/s; COPY baseline: {:.2?} = {:.0} events/s; ratio {:.2}",
            self.events,
            self.archive,
            self.archive_rate(),
            self.copy,
            self.copy_rate(),
            self.ratio()
        )
    }
}

/// Fills every partition of `layout` with `events` synthetic events in total, drains them with
/// one archiver into `pg`, then writes the same rows with `COPY` into a scratch table.
/// `layout` should be a fresh namespace: its streams are archived (and trimmed) for real.
pub async fn run(
    redis: &Pool,
    pg: &PgPool,
    layout: &Layout,
    events: usize,
) -> anyhow::Result<BenchReport> {
    let started = Instant::now();
    let rows = fill(redis, layout, events).await?;
    let fill = started.elapsed();

    let archiver = Archiver::new(
        redis.clone(),
        pg.clone(),
        layout.clone(),
        ArchiverConfig {
            consumer: format!("bench-{}", std::process::id()),
            ..ArchiverConfig::default()
        },
    );
    let started = Instant::now();
    let report = archiver.drain().await?;
    let archive = started.elapsed();
    if report.inserted != events as u64 {
        return Err(anyhow!(
            "benchmark archived {} of {events} events",
            report.inserted
        ));
    }

    let copy = copy_baseline(pg, &rows).await?;
    Ok(BenchReport {
        events,
        fill,
        archive,
        copy,
    })
}

/// [`run`] into a scratch database (see [`Scratch`]), dropped afterwards.
pub async fn run_in_scratch_database(
    redis: &Pool,
    database_url: &str,
    layout: &Layout,
    events: usize,
) -> anyhow::Result<BenchReport> {
    let scratch = Scratch::create(database_url, "bench").await?;
    let report = run(redis, &scratch.pg, layout, events).await;
    scratch.drop().await?;
    report
}

/// XADDs `events` encoded events, spread over the partitions, pipelined; returns their rows.
async fn fill(redis: &Pool, layout: &Layout, events: usize) -> anyhow::Result<Vec<Row>> {
    let redis = redis.next();
    if !redis.is_connected() {
        return Err(anyhow!("redis is not connected"));
    }
    let mut rows = Vec::with_capacity(events);
    let now_us = chrono::Utc::now().timestamp_micros();
    for chunk_start in (0..events).step_by(1_000) {
        let pipeline = redis.pipeline();
        for i in chunk_start..(chunk_start + 1_000).min(events) {
            let event = synthetic(i, now_us);
            let p = u16::try_from(i % usize::from(layout.partitions())).unwrap_or(0);
            let bytes = codec::encode(&event);
            let _: () = pipeline
                .xadd(
                    layout.stream(p),
                    false,
                    None,
                    "*",
                    vec![(codec::EVENT_FIELD, Value::Bytes(bytes.into()))],
                )
                .await?;
            rows.push(Row::new(p, "0-0", &event).map_err(anyhow::Error::msg)?);
        }
        let _: Vec<Value> = pipeline.all().await?;
    }
    Ok(rows)
}

fn synthetic(i: usize, now_us: i64) -> Event {
    let rejected = i.is_multiple_of(4);
    Event {
        v: SCHEMA_VERSION,
        id: Uuid::now_v7(),
        at_us: now_us + i as i64,
        ip: std::net::IpAddr::from([198, 51, 100, (i % 250) as u8]),
        to: format!("+1415555{:04}", i % 10_000),
        from: i.is_multiple_of(3).then(|| "Acme".to_owned()),
        message: format!("Your verification code is {:06}", i % 1_000_000),
        stored: None,
        segments: 1,
        outcome: if rejected {
            Outcome::Rejected
        } else {
            Outcome::Accepted
        },
        violated: if rejected {
            vec!["1m".to_owned()]
        } else {
            Vec::new()
        },
        retry_after: if rejected { 37 } else { 0 },
        policy: "3/1m,10/1d".to_owned(),
        shadow_violated: vec![],
        reason: None,
        country: None,
        client: None,
        api_client: None,
        ip_unattributed: false,
    }
}

/// Times a plain `COPY` of `rows` (formatting included) into a scratch copy of `sms_events`.
async fn copy_baseline(pg: &PgPool, rows: &[Row]) -> anyhow::Result<Duration> {
    pg.execute("DROP TABLE IF EXISTS sms_events_bench_copy")
        .await?;
    // Same primary key, indexes and durability as the real table, or the baseline flatters COPY.
    pg.execute("CREATE TABLE sms_events_bench_copy (LIKE sms_events INCLUDING ALL)")
        .await?;
    let started = Instant::now();
    let mut conn = pg.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            r#"COPY sms_events_bench_copy (id, stream_id, partition, at, at_us, ip, "to", "from",
               message, segments, outcome, violated, retry_after, policy) FROM STDIN"#,
        )
        .await?;
    let mut text = String::with_capacity(256 * 5_000);
    for chunk in rows.chunks(5_000) {
        text.clear();
        for r in chunk {
            let from = r.from.as_deref().map_or("\\N".to_owned(), escape);
            let violated = format!("{{{}}}", r.violated.join(","));
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.id,
                escape(&r.stream_id),
                r.partition,
                r.at.to_rfc3339(),
                r.at_us,
                r.ip,
                escape(&r.to),
                from,
                escape(&r.message),
                r.segments,
                r.outcome,
                escape(&violated),
                r.retry_after,
                escape(&r.policy)
            );
        }
        copy.send(text.as_bytes()).await?;
    }
    copy.finish().await?;
    let elapsed = started.elapsed();
    drop(conn);
    pg.execute("DROP TABLE sms_events_bench_copy").await?;
    Ok(elapsed)
}

/// COPY text format escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}
