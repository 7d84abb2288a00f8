//! The replay and audit benchmark behind `smsgate bench --mode replay`: `COPY` N synthetic
//! events into a scratch archive, then time a replay of all of them into a sink (each event
//! rendered as its JSON line, as `smsgate replay > /dev/null` does) and an audit of all of
//! them, with the process's peak memory before and after.
//!
//! The events are decided by the policy model as they are generated, so the audit of the
//! synthetic archive must come out consistent: the benchmark checks its own data too.

use std::fmt::Write as _;
use std::io::Write as _;

use std::time::{Duration, Instant};

use anyhow::anyhow;
use archiver::{Kind, Partitions};
use fred::clients::Pool;
use ledger::{Auditor, Replay, ReplayOptions, event_json};
use limiter::model::Model;
use limiter::{Layout, Outcome, Policy};
use sqlx::PgPool;
use uuid::Uuid;

use super::scratch::Scratch;

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct ReplayBenchReport {
    pub events: u64,
    pub fill: Duration,
    pub replay: Duration,
    pub audit: Duration,
    pub mismatches: u64,
    /// Peak resident memory (VmHWM) after filling, after the replay, after the audit, in KiB.
    pub peak_kib: [u64; 3],
}

impl ReplayBenchReport {
    pub fn replay_rate(&self) -> f64 {
        self.events as f64 / self.replay.as_secs_f64()
    }

    pub fn audit_rate(&self) -> f64 {
        self.events as f64 / self.audit.as_secs_f64()
    }
}

impl std::fmt::Display for ReplayBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fill (COPY): {} events in {:.2?}\n\
             replay → JSON lines → sink: {:.2?} = {:.0} events/s\n\
             audit: {:.2?} = {:.0} events/s, {} mismatches\n\
             peak RSS (VmHWM): {} KiB after fill, {} KiB after replay, {} KiB after audit",
            self.events,
            self.fill,
            self.replay,
            self.replay_rate(),
            self.audit,
            self.audit_rate(),
            self.mismatches,
            self.peak_kib[0],
            self.peak_kib[1],
            self.peak_kib[2],
        )
    }
}

/// The process's peak resident set size so far (`VmHWM`), in KiB; 0 where /proc has none.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Fills `pg` with `events` synthetic events of `layout`'s partitions, replays and audits them.
/// `layout` should name a fresh namespace (its streams are read, and should be empty).
pub async fn run(
    redis: &Pool,
    pg: &PgPool,
    layout: &Layout,
    events: u64,
) -> anyhow::Result<ReplayBenchReport> {
    let started = Instant::now();
    fill(pg, layout, events).await?;
    let fill = started.elapsed();
    let after_fill = peak_rss_kib();

    let started = Instant::now();
    let mut replay = Replay::new(redis.clone(), pg.clone(), layout, ReplayOptions::default());
    let mut sink = std::io::BufWriter::new(std::io::sink());
    let mut replayed = 0_u64;
    while let Some(item) = replay.next().await? {
        serde_json::to_writer(&mut sink, &event_json(&item))?;
        let _ = sink.write_all(b"\n");
        replayed += 1;
    }
    let replay = started.elapsed();
    let after_replay = peak_rss_kib();
    if replayed != events {
        return Err(anyhow!("replayed {replayed} of {events} events"));
    }

    let started = Instant::now();
    let mut reader = Replay::new(redis.clone(), pg.clone(), layout, ReplayOptions::default());
    let mut auditor = Auditor::new(None);
    while let Some(item) = reader.next().await? {
        if let Some(mismatch) = auditor.observe(&item) {
            tracing::warn!(%mismatch, "benchmark data inconsistent");
        }
    }
    let summary = auditor.finish();
    let audit = started.elapsed();
    Ok(ReplayBenchReport {
        events,
        fill,
        replay,
        audit,
        mismatches: summary.mismatches,
        peak_kib: [after_fill, after_replay, peak_rss_kib()],
    })
}

/// [`run`] in a scratch database (see [`Scratch`]), dropped afterwards unless `keep` (then its
/// name is logged, for timing the CLI against it).
pub async fn run_in_scratch_database(
    redis: &Pool,
    database_url: &str,
    layout: &Layout,
    events: u64,
    keep: bool,
) -> anyhow::Result<ReplayBenchReport> {
    let scratch = Scratch::create(database_url, "replay").await?;
    let report = run(redis, &scratch.pg, layout, events).await;
    if keep {
        tracing::info!(database = %scratch.name, "benchmark database kept");
        println!("kept the benchmark database {}", scratch.name);
        scratch.pg.close().await;
    } else {
        scratch.drop().await?;
    }
    report
}

/// Clients the synthetic traffic spreads over, and the time between two events.
const CLIENTS: u64 = 5_000;
const STEP_US: i64 = 5_000;

/// Writes `events` events decided by the default policy's model with `COPY`, streamed in
/// chunks so the generator's memory stays flat too.
pub async fn fill(pg: &PgPool, layout: &Layout, events: u64) -> anyhow::Result<()> {
    let policy = Policy::default();
    let policy_text = policy.to_string();
    let mut model = Model::new(policy);
    let start_us =
        chrono::Utc::now().timestamp_micros() - i64::try_from(events).unwrap_or(0) * STEP_US;
    // `COPY` into the partitioned archive needs the day partitions of the range to exist.
    let first = chrono::DateTime::from_timestamp_micros(start_us)
        .unwrap_or_default()
        .date_naive();
    let days = first
        .iter_days()
        .take_while(|d| *d <= chrono::Utc::now().date_naive())
        .flat_map(|d| [(Kind::Accepted, d), (Kind::Rejected, d)]);
    Partitions::new().ensure(pg, days).await?;
    let mut conn = pg.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            r#"COPY sms_events (id, stream_id, partition, at, at_us, ip, "to", "from", message,
               segments, outcome, violated, retry_after, policy) FROM STDIN"#,
        )
        .await?;
    // The last stream id of each partition, to number entries within one millisecond.
    let mut last_ids: Vec<(u64, u64)> = vec![(0, 0); usize::from(layout.partitions())];
    let mut text = String::with_capacity(256 * 10_000);
    for i in 0..events {
        // Clients by a multiplicative hash, so neighbours in time are different clients.
        let c = (i.wrapping_mul(2_654_435_761)) % CLIENTS;
        let ip = std::net::IpAddr::from([10, 0, (c / 250) as u8, (c % 250) as u8]);
        let to = format!("+1415555{c:04}");
        let at_us = start_us + i64::try_from(i).unwrap_or(0) * STEP_US;
        let client = limiter::layout::client_key(&ip, &to);
        let partition = layout.partition_of(&client);
        let decision = model.decide(&client, at_us);
        let ms = u64::try_from(at_us / 1_000).unwrap_or(0);
        let last = &mut last_ids[usize::from(partition)];
        *last = if last.0 == ms {
            (ms, last.1 + 1)
        } else {
            (ms, 0)
        };
        let at = limiter::json::rfc3339_micros(at_us);
        let from = if i % 3 == 0 { "Acme" } else { "\\N" };
        let _ = writeln!(
            text,
            "{}\t{}-{}\t{partition}\t{at}\t{at_us}\t{ip}\t{to}\t{from}\tYour verification code is {:06}\t1\t{}\t{{{}}}\t{}\t{policy_text}",
            Uuid::now_v7(),
            last.0,
            last.1,
            i % 1_000_000,
            decision.outcome.as_str(),
            decision.violated.join(","),
            if decision.outcome == Outcome::Accepted {
                0
            } else {
                decision.retry_after
            },
        );
        if text.len() > 2_000_000 {
            copy.send(text.as_bytes()).await?;
            text.clear();
        }
    }
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    sqlx::query("ANALYZE sms_events")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
