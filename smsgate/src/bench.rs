//! `smsgate bench`: a load generator in the spirit of redis-benchmark and pgbench.
//!
//! It drives `POST /api/sms` over N keep-alive HTTP/1.1 connections for a fixed time over a
//! key space of destination numbers, then, in the same run, drives the very same Lua script
//! straight at Redis (EVALSHA through `RateLimiter`, same concurrency, same key space), and
//! prints both with the API's throughput as a ratio of the Redis-only baseline. Without
//! `--url` it starts an ingest server in this process on a free port with a fresh namespace;
//! with several (`--url http://a,http://b`) the connections are spread over them evenly, to
//! measure ingest replicas side by side. `REDIS_URL` may name a Redis Cluster; `--partitions`
//! spreads the key space over that many streams (and so over the cluster's primaries).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use limiter::{Layout, Outcome, Policy, RateLimiter, Ruleset, SmsRequest};
use rand::Rng;
use tokio::net::TcpStream;

pub mod archive;
mod dispatch;
pub mod replay;
mod scratch;

use crate::app::{App, Roles};
use crate::cli::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The HTTP API, then the Redis-only baseline, and their ratio.
    Api,
    /// Only the Redis-only baseline (EVALSHA of the decision script).
    Script,
    /// The archiver: `--events` pre-filled on a stream drained into Postgres (a scratch
    /// database on the `DATABASE_URL` server), then the same rows via plain `COPY`, and their ratio.
    Archive,
    /// Replay and audit: `--events` synthetic events `COPY`ed into a scratch archive, replayed
    /// as JSON lines into a sink and audited, with events/s and peak memory.
    Replay,
    /// Delivery: `--events` accepted decisions pre-filled, a `smsgate dispatcher` process sends
    /// them to a local Twilio-shaped endpoint that answers at once; messages/s and the
    /// dispatcher's CPU per message.
    Dispatch,
}

#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "api")]
    pub mode: Mode,
    /// Running smsgate ingest servers, comma-separated; without one an ingest server is
    /// started in this process.
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Seconds per phase.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration: u64,
    /// Distinct destination numbers (clients) the requests spread over.
    #[arg(long, short = 'k', default_value_t = 10_000)]
    pub keys: u32,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "SMSGATE_LIMITS", default_value = Policy::DEFAULT, value_parser = Policy::parse)]
    pub limits: Policy,
    /// A TOML policy file: both phases decide under its rules instead of the seed's rule over
    /// `--limits` (e.g. `deploy/policy.example.toml`, four rules).
    #[arg(long, env = "SMSGATE_POLICY")]
    pub policy_file: Option<std::path::PathBuf>,
    /// Archive and dispatch modes: events pre-filled on the stream; replay mode: events in the archive.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Archive and replay modes: the Postgres server (a scratch database is created on it and dropped).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/smsgate"
    )]
    pub database_url: String,
    /// Replay mode: keep the scratch database (its name is printed), to time the CLI against it.
    #[arg(long)]
    pub keep: bool,
    /// Streams the clients are spread over (the script phase, and the in-process server).
    #[arg(long, env = "SMSGATE_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub partitions: u16,
}

/// What one phase measured.
#[derive(Debug, Default)]
pub struct PhaseReport {
    pub requests: u64,
    pub elapsed: Duration,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    /// Sorted request latencies in microseconds.
    pub latencies_us: Vec<u32>,
}

impl PhaseReport {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }

    fn merge(&mut self, other: PhaseReport) {
        self.requests += other.requests;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<8} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9} {:>7}",
            self.per_second(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.percentile_ms(99.9),
            self.accepted,
            self.rejected,
            self.errors
        )
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.mode == Mode::Archive {
        return archive_phase(&args).await;
    }
    if args.mode == Mode::Replay {
        return replay_phase(&args).await;
    }
    if args.mode == Mode::Dispatch {
        return dispatch::run(&args).await;
    }
    let namespace = format!("bench-{}", uuid_suffix());
    let layout = Layout::new(namespace.clone(), args.partitions);
    let rules = match &args.policy_file {
        Some(path) => crate::cli::load_rules(path)?,
        None => Ruleset::seed(args.limits.clone()),
    };
    println!(
        "smsgate bench: {} connections, {} s per phase, {} keys, policy {} ({} rules), {} partition(s), redis {}",
        args.connections,
        args.duration,
        args.keys,
        rules,
        rules.rules().len(),
        args.partitions,
        args.redis_url
    );
    println!(
        "{:<8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "phase", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "accepted", "rejected", "errors"
    );
    let duration = Duration::from_secs(args.duration);
    let api = if args.mode == Mode::Api {
        let (addrs, server) = match args.url.as_slice() {
            [] => {
                let mut settings = Settings::defaults();
                settings.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                settings.redis_url = args.redis_url.clone();
                settings.namespace = format!("{namespace}-api");
                settings.limits = args.limits.clone();
                settings.policy_file = args.policy_file.clone();
                settings.partitions = args.partitions;
                let app = App::build(settings, Roles::INGEST).await?;
                let addr = app.local_addr();
                let stop = app.shutdown_token();
                tokio::spawn(app.run_until_stopped(std::future::pending()));
                (vec![addr], Some(stop))
            }
            urls => (
                urls.iter()
                    .map(|u| parse_addr(u))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                None,
            ),
        };
        let report = http_phase(&addrs, args.connections, duration, args.keys).await?;
        println!("{}", report.line("api"));
        if let Some(stop) = server {
            stop.cancel();
        }
        Some(report)
    } else {
        None
    };
    let script = script_phase(&args, rules, layout, duration).await?;
    println!("{}", script.line("script"));
    if let Some(api) = api {
        println!(
            "api/script throughput ratio: {:.2}",
            api.per_second() / script.per_second().max(f64::EPSILON)
        );
    }
    // The run leaves hundreds of thousands of events behind; they are of no further use.
    let redis = limiter::connection::connect(&args.redis_url, 1, Duration::from_secs(5)).await?;
    for ns in [namespace.clone(), format!("{namespace}-api")] {
        limiter::connection::drop_namespace(redis.next(), &ns).await?;
    }
    Ok(())
}

/// A pool of `size` connections to `url`, or an error when Redis does not answer.
async fn reachable_redis(url: &str, size: usize) -> anyhow::Result<fred::clients::Pool> {
    let redis = limiter::connection::connect(url, size, Duration::from_secs(5))
        .await
        .with_context(|| format!("invalid REDIS_URL {url}"))?;
    anyhow::ensure!(
        limiter::connection::is_up(&redis),
        "redis is not reachable at {url}"
    );
    Ok(redis)
}

/// `--mode archive`: see [`archive`].
async fn archive_phase(args: &BenchArgs) -> anyhow::Result<()> {
    let redis = reachable_redis(&args.redis_url, 2).await?;
    let layout = Layout::new(format!("bench-{}", uuid_suffix()), 1);
    println!("smsgate bench --mode archive: {} events", args.events);
    let report = archive::run_in_scratch_database(&redis, &args.database_url, &layout, args.events)
        .await
        .context("archive benchmark")?;
    println!(
        "archive  {:>10.0} events/s ({} events in {:.2?})",
        report.archive_rate(),
        report.events,
        report.archive
    );
    println!(
        "copy     {:>10.0} events/s ({} rows in {:.2?})",
        report.copy_rate(),
        report.events,
        report.copy
    );
    println!("archive/copy throughput ratio: {:.2}", report.ratio());
    Ok(())
}

/// `--mode replay`: see [`replay`].
async fn replay_phase(args: &BenchArgs) -> anyhow::Result<()> {
    let redis = reachable_redis(&args.redis_url, 2).await?;
    let layout = Layout::new(format!("bench-{}", uuid_suffix()), 1);
    println!("smsgate bench --mode replay: {} events", args.events);
    let report = replay::run_in_scratch_database(
        &redis,
        &args.database_url,
        &layout,
        args.events as u64,
        args.keep,
    )
    .await
    .context("replay benchmark")?;
    println!("{report}");
    anyhow::ensure!(
        report.mismatches == 0,
        "the audit of the synthetic archive found {} mismatches",
        report.mismatches
    );
    Ok(())
}

fn uuid_suffix() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

fn parse_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    host.parse()
        .with_context(|| format!("--url must be http://<ip>:<port>, got {url}"))
}

fn number(key: u32) -> String {
    // +1 415 2xx xxxx: a valid NANP range, one number per key.
    format!("+14152{:06}", key % 1_000_000)
}

/// `connections` workers spread round-robin over `addrs`.
async fn http_phase(
    addrs: &[SocketAddr],
    connections: usize,
    duration: Duration,
    keys: u32,
) -> anyhow::Result<PhaseReport> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(http_worker(addrs[i % addrs.len()], deadline, keys)))
        .collect();
    let mut total = PhaseReport::default();
    for worker in workers {
        total.merge(worker.await??);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

async fn http_worker(
    addr: SocketAddr,
    deadline: Instant,
    keys: u32,
) -> anyhow::Result<PhaseReport> {
    let stream = TcpStream::connect(addr)
        .await
        .context("connect to smsgate")?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let mut report = PhaseReport::default();
    while Instant::now() < deadline {
        let key = rand::rng().random_range(0..keys.max(1));
        let body = format!(r#"{{"to":"{}","message":"bench"}}"#, number(key));
        let request = Request::post("/api/sms")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let sent = Instant::now();
        let status = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                status
            }
            Err(_) => 0,
        };
        report.latencies_us.push(elapsed_us(sent));
        report.requests += 1;
        match status {
            202 => report.accepted += 1,
            429 | 403 => report.rejected += 1,
            _ => report.errors += 1,
        }
        if status == 0 {
            break;
        }
    }
    Ok(report)
}

async fn script_phase(
    args: &BenchArgs,
    rules: Ruleset,
    layout: Layout,
    duration: Duration,
) -> anyhow::Result<PhaseReport> {
    let redis = reachable_redis(&args.redis_url, 4).await?;
    let limiter = Arc::new(RateLimiter::with_rules(rules, layout));
    limiter.load(redis.next()).await?;
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (redis, limiter, keys) = (redis.clone(), limiter.clone(), args.keys.max(1));
            tokio::spawn(async move {
                let mut report = PhaseReport::default();
                let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                while Instant::now() < deadline {
                    let to = number(rand::rng().random_range(0..keys));
                    let request = SmsRequest {
                        ip,
                        to: &to,
                        from: None,
                        message: "bench",
                        segments: 1,
                    };
                    let sent = Instant::now();
                    let decision = limiter.decide(redis.next(), &request).await;
                    report.latencies_us.push(elapsed_us(sent));
                    report.requests += 1;
                    match decision.map(|d| d.outcome) {
                        Ok(Outcome::Accepted) => report.accepted += 1,
                        Ok(Outcome::Rejected | Outcome::Blocked) => report.rejected += 1,
                        Err(_) => report.errors += 1,
                    }
                }
                report
            })
        })
        .collect();
    let mut total = PhaseReport::default();
    for worker in workers {
        total.merge(worker.await?);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

fn elapsed_us(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}
