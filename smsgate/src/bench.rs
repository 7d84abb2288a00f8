//! `smsgate bench`: a load generator in the spirit of redis-benchmark and pgbench.
//!
//! It drives `POST /api/sms` over N keep-alive HTTP/1.1 connections for a fixed time, then, in
//! the same run, drives the very same decision straight at Redis (EVALSHA through
//! `RateLimiter`, same concurrency, same clients; one call per decision, as redis-benchmark
//! would send it, unless `--group-commit`, which sends concurrent decisions together as the
//! server does), then a plain sliding-log script doing the same checks and XADD
//! (`baseline.lua`, the floor). It prints each phase's throughput and
//! latency, the API's throughput as a ratio of the Redis-only decision, and what each request
//! cost in CPU on each side: the server process's own time from `/proc/<pid>/stat`, and Redis's
//! from `INFO cpu`, both per request.
//!
//! Clients are (IP, number) pairs: request k goes to `+14152` and six digits of k, from
//! `10.x.y.z` spelled from k (sent as `X-Forwarded-For`, which the server trusts from loopback),
//! so rules keyed on the number, the source or both all see many clients. `--distinct` makes
//! every request a new client (all accepted under any sane policy); otherwise requests pick
//! from `--keys` clients at random, which soon fills their quotas.
//!
//! Without `--url` the server is a child `smsgate ingest` process (this binary) on a free port
//! and a fresh namespace, so its CPU is its own; with several (`--url http://a,http://b`) the
//! connections are spread over running servers evenly and only Redis's CPU is reported.
//! `REDIS_URL` may name a Redis Cluster (CPU is then not reported: INFO is per node);
//! `--partitions` spreads the clients over that many streams.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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
mod cpu;
mod dispatch;
pub mod replay;
mod scratch;

use cpu::Cpu;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The HTTP API, then the Redis-only baseline, and their ratio.
    Api,
    /// Only the Redis-only phases: the decision script, then the plain sliding-log baseline.
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

/// One phase of the decision benchmark (`--phases`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Api,
    Script,
    Baseline,
}

#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "api")]
    pub mode: Mode,
    /// Only these phases of the api and script modes, comma-separated (default: every phase of
    /// the mode). One phase alone is for instruction counts, e.g. Redis under callgrind with
    /// `--phases script`; the baseline alone first makes one decision to copy its event.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub phases: Vec<Phase>,
    /// Running smsgate ingest servers, comma-separated; without one an ingest server is
    /// started in this process.
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Seconds per phase.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration: u64,
    /// Distinct clients (IP and number) the requests spread over.
    #[arg(long, short = 'k', default_value_t = 10_000)]
    pub keys: u32,
    /// Every request a new client (up to 1,000,000 per phase, then they repeat).
    #[arg(long)]
    pub distinct: bool,
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
    /// The child server's runtime threads (its `SMSGATE_WORKER_THREADS`); by default it has the
    /// bench's own setting, one per CPU unless set.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub server_threads: Option<u16>,
    /// The script phase sends decisions under group commit, as ingest does (concurrent
    /// decisions of a partition share calls); by default one call per decision.
    #[arg(long)]
    pub group_commit: bool,
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
    /// CPU seconds each process used during the phase: the server (a child `smsgate ingest`
    /// only), Redis (one Redis only) and the bench itself, the load generator.
    pub cpu: cpu::Used,
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

    /// CPU µs per request of `seconds` used over this phase.
    fn per_request_us(&self, seconds: Option<f64>) -> Option<f64> {
        seconds.map(|s| s * 1e6 / (self.requests.max(1) as f64))
    }

    /// CPU µs per request on every side measured: what the machine's cores spent per request.
    fn total_us(&self) -> f64 {
        [self.cpu.server, self.cpu.redis, self.cpu.load]
            .into_iter()
            .filter_map(|side| self.per_request_us(side))
            .sum()
    }

    fn merge(&mut self, other: PhaseReport) {
        self.requests += other.requests;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }

    const HEADER: [&str; 11] = [
        "phase",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "accepted",
        "rejected",
        "errors",
        "srv µs",
        "redis µs",
        "load µs",
    ];

    fn header() -> String {
        let h = Self::HEADER;
        format!(
            "{:<8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8}",
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10]
        )
    }

    fn line(&self, name: &str) -> String {
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "{name:<8} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8}",
            self.per_second(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.percentile_ms(99.9),
            self.accepted,
            self.rejected,
            self.errors,
            us(self.per_request_us(self.cpu.server)),
            us(self.per_request_us(self.cpu.redis)),
            us(self.per_request_us(self.cpu.load)),
        )
    }
}

/// Which client a request comes from: a random one of `keys`, or a new one each time.
#[derive(Clone, Debug)]
struct Traffic {
    keys: u32,
    next: Arc<AtomicU32>,
    distinct: bool,
}

impl Traffic {
    fn new(args: &BenchArgs) -> Self {
        Self {
            keys: args.keys.max(1),
            next: Arc::new(AtomicU32::new(0)),
            distinct: args.distinct,
        }
    }

    fn pick(&self) -> u32 {
        if self.distinct {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            rand::rng().random_range(0..self.keys)
        }
    }

    /// The same traffic again from its first client (each phase sees the same clients).
    fn restart(&self) -> Self {
        Self {
            next: Arc::new(AtomicU32::new(0)),
            ..self.clone()
        }
    }
}

/// Client `key`'s destination: +1 415 2xx xxxx, a valid NANP range, one number per key.
fn number(key: u32) -> String {
    format!("+14152{:06}", key % 1_000_000)
}

/// Client `key`'s request to `to` (its [`number`]), as the script phase decides it.
fn request(key: u32, to: &str) -> SmsRequest<'_> {
    SmsRequest {
        ip: IpAddr::V4(source(key)),
        to,
        from: None,
        message: "bench",
        segments: 1,
    }
}

/// Client `key`'s source address, 10.x.y.z.
fn source(key: u32) -> Ipv4Addr {
    let [_, x, y, z] = (key % 1_000_000).to_be_bytes();
    Ipv4Addr::new(10, x, y, z)
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
    let traffic = Traffic::new(&args);
    println!(
        "smsgate bench: {} connections, {} s per phase, {}, policy {} ({} rules), {} partition(s), server threads {}, script phase {}, redis {}",
        args.connections,
        args.duration,
        if args.distinct {
            "every request a new client".to_owned()
        } else {
            format!("{} clients", args.keys)
        },
        rules,
        rules.rules().len(),
        args.partitions,
        args.server_threads
            .map(|n| n.to_string())
            .or_else(|| std::env::var("SMSGATE_WORKER_THREADS").ok())
            .unwrap_or_else(|| "one per CPU".to_owned()),
        if args.group_commit {
            "under group commit"
        } else {
            "one call per decision"
        },
        args.redis_url
    );
    let redis = crate::app::reachable_redis(&args.redis_url, 4).await?;
    let cpu = Cpu::new(&redis);
    println!("{}", PhaseReport::header());
    let duration = Duration::from_secs(args.duration);
    let runs = |phase: Phase| {
        if args.phases.is_empty() {
            args.mode == Mode::Api || phase != Phase::Api
        } else {
            args.phases.contains(&phase)
        }
    };
    let api = if runs(Phase::Api) {
        let api_namespace = format!("{namespace}-api");
        let (addrs, mut server) = match args.url.as_slice() {
            [] => {
                let (addr, child) = spawn_ingest(&args, &api_namespace).await?;
                (vec![addr], Some(child))
            }
            urls => (
                urls.iter()
                    .map(|u| parse_addr(u))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                None,
            ),
        };
        let pid = server.as_ref().map(std::process::Child::id);
        let before = cpu.read(pid).await?;
        let mut report = http_phase(&addrs, args.connections, duration, traffic.restart()).await?;
        report.cpu = cpu.read(pid).await?.since(&before);
        println!("{}", report.line("api"));
        if let Some(child) = &mut server {
            child.kill().ok();
            child.wait().ok();
        }
        Some(report)
    } else {
        None
    };
    let script = if runs(Phase::Script) {
        let before = cpu.read(None).await?;
        let mut script = script_phase(
            &redis,
            &args,
            rules.clone(),
            layout.clone(),
            duration,
            traffic.restart(),
        )
        .await?;
        script.cpu = cpu.read(None).await?.since(&before);
        println!("{}", script.line("script"));
        Some(script)
    } else {
        None
    };
    let baseline = if runs(Phase::Baseline) {
        if script.is_none() {
            let limiter = RateLimiter::with_rules(rules.clone(), layout.clone());
            let to = number(0);
            limiter.decide(redis.next(), &request(0, &to)).await?;
        }
        let baseline_layout = Layout::new(format!("{namespace}-baseline"), args.partitions);
        let event = sample_event(&redis, &layout).await?;
        let before = cpu.read(None).await?;
        let mut baseline = baseline_phase(
            &redis,
            &args,
            &rules,
            &baseline_layout,
            event,
            duration,
            traffic.restart(),
        )
        .await?;
        baseline.cpu = cpu.read(None).await?.since(&before);
        println!("{}", baseline.line("baseline"));
        Some(baseline)
    } else {
        None
    };
    if let (Some(api), Some(script)) = (&api, &script) {
        println!(
            "api/script throughput ratio: {:.2}",
            api.per_second() / script.per_second().max(f64::EPSILON)
        );
        // Both phases share the machine's cores with their load generator: when the cores are
        // busy, throughput follows the CPU all three processes spend per request.
        println!(
            "CPU per request, every process (server + redis + load generator): api {:.1} µs, script {:.1} µs",
            api.total_us(),
            script.total_us()
        );
    }
    let redis_per = |r: &PhaseReport| r.per_request_us(r.cpu.redis);
    if let (Some(decision), Some(floor)) = (
        script.as_ref().and_then(redis_per),
        baseline.as_ref().and_then(redis_per),
    ) {
        println!(
            "redis CPU per decision, script/baseline: {:.2}",
            decision / floor.max(f64::EPSILON)
        );
    }
    // The run leaves hundreds of thousands of events behind; they are of no further use.
    for ns in [
        namespace.clone(),
        format!("{namespace}-api"),
        format!("{namespace}-baseline"),
    ] {
        limiter::connection::drop_namespace(redis.next(), &ns).await?;
    }
    Ok(())
}

/// A child `smsgate ingest` (this binary) on a free port, trusting loopback's
/// `X-Forwarded-For`, once it answers.
async fn spawn_ingest(
    args: &BenchArgs,
    namespace: &str,
) -> anyhow::Result<(SocketAddr, std::process::Child)> {
    use std::process::{Command, Stdio};
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("ingest")
        .env("REDIS_URL", &args.redis_url)
        .env("SMSGATE_NAMESPACE", namespace)
        .env("SMSGATE_PARTITIONS", args.partitions.to_string())
        .env("SMSGATE_LISTEN", addr.to_string())
        .env("SMSGATE_LIMITS", args.limits.to_string())
        .env("SMSGATE_TRUSTED_PROXIES", "127.0.0.1")
        .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
        .env("RUST_LOG", "warn")
        // Trusting a proxy needs an admin token; the bench never uses the operator API.
        .env(
            "SMSGATE_ADMIN_TOKEN",
            format!("bench-{}-{}", uuid_suffix(), uuid_suffix()),
        )
        .env_remove("SMSGATE_POLICY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(path) = &args.policy_file {
        command.env("SMSGATE_POLICY", path);
    }
    if let Some(threads) = args.server_threads {
        command.env("SMSGATE_WORKER_THREADS", threads.to_string());
    }
    let mut child = command.spawn().context("starting `smsgate ingest`")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("`smsgate ingest` exited before it listened: {status}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "`smsgate ingest` did not listen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((addr, child))
}

/// `--mode archive`: see [`archive`].
async fn archive_phase(args: &BenchArgs) -> anyhow::Result<()> {
    let redis = crate::app::reachable_redis(&args.redis_url, 2).await?;
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
    let redis = crate::app::reachable_redis(&args.redis_url, 2).await?;
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

/// `connections` workers spread round-robin over `addrs`.
async fn http_phase(
    addrs: &[SocketAddr],
    connections: usize,
    duration: Duration,
    traffic: Traffic,
) -> anyhow::Result<PhaseReport> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(http_worker(
                addrs[i % addrs.len()],
                deadline,
                traffic.clone(),
            ))
        })
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
    traffic: Traffic,
) -> anyhow::Result<PhaseReport> {
    let stream = TcpStream::connect(addr)
        .await
        .context("connect to smsgate")?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let mut report = PhaseReport::default();
    let host = addr.to_string();
    while Instant::now() < deadline {
        let key = traffic.pick();
        let body = format!(r#"{{"to":"{}","message":"bench"}}"#, number(key));
        let request = Request::post("/api/sms")
            .header("host", &host)
            .header("content-type", "application/json")
            .header("x-forwarded-for", source(key).to_string())
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

/// Runs `one` (one request of client `key`, true when accepted) from `connections` tasks until
/// `duration` is over.
async fn redis_phase<F, Fut>(
    connections: usize,
    duration: Duration,
    traffic: Traffic,
    one: F,
) -> anyhow::Result<PhaseReport>
where
    F: Fn(u32) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<bool>> + Send,
{
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (one, traffic) = (one.clone(), traffic.clone());
            tokio::spawn(async move {
                let mut report = PhaseReport::default();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let accepted = one(traffic.pick()).await;
                    report.latencies_us.push(elapsed_us(sent));
                    report.requests += 1;
                    match accepted {
                        Ok(true) => report.accepted += 1,
                        Ok(false) => report.rejected += 1,
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

/// The decision script through `RateLimiter`, with no HTTP in between: one call per decision,
/// as redis-benchmark would send it, or under `--group-commit` as ingest sends decisions.
async fn script_phase(
    redis: &fred::clients::Pool,
    args: &BenchArgs,
    rules: Ruleset,
    layout: Layout,
    duration: Duration,
    traffic: Traffic,
) -> anyhow::Result<PhaseReport> {
    let limiter = RateLimiter::with_rules(rules, layout);
    let limiter = Arc::new(match args.group_commit {
        true => limiter.with_group_commit(),
        false => limiter,
    });
    limiter.load(redis.next()).await?;
    let redis = redis.clone();
    redis_phase(args.connections, duration, traffic, move |key| {
        let (redis, limiter) = (redis.clone(), limiter.clone());
        async move {
            let to = number(key);
            let decision = limiter.decide(redis.next(), &request(key, &to)).await?;
            Ok(decision.outcome == Outcome::Accepted)
        }
    })
    .await
}

/// The plain sliding-log script: each rule's quota per number, the same windows, an event of
/// the size the decision script writes.
const BASELINE_LUA: &str = include_str!("bench/baseline.lua");

async fn baseline_phase(
    redis: &fred::clients::Pool,
    args: &BenchArgs,
    rules: &Ruleset,
    layout: &Layout,
    event: Bytes,
    duration: Duration,
    traffic: Traffic,
) -> anyhow::Result<PhaseReport> {
    use fred::interfaces::LuaInterface;
    use fred::types::Value;
    let sha: String = redis.next().script_load_cluster(BASELINE_LUA).await?;
    let mut windows = vec![Value::from(rules.rules().len().to_string())];
    for rule in rules.rules() {
        windows.push(Value::from(rule.limits.windows().len().to_string()));
        for w in rule.limits.windows() {
            windows.push(Value::from(w.limit.to_string()));
            windows.push(Value::from(w.duration_micros().to_string()));
        }
    }
    let (redis, rule_count) = (redis.clone(), rules.rules().len());
    let (layout, windows, sha) = (Arc::new(layout.clone()), Arc::new(windows), Arc::new(sha));
    redis_phase(args.connections, duration, traffic, move |key| {
        let (redis, layout, windows, sha, event) = (
            redis.clone(),
            layout.clone(),
            windows.clone(),
            sha.clone(),
            event.clone(),
        );
        async move {
            let to = number(key);
            let partition = layout.partition_of(&to);
            let mut keys = vec![layout.stream(partition)];
            keys.extend((0..rule_count).map(|r| layout.key(partition, &format!("q{r}:{to}"))));
            let mut argv = vec![
                Value::Bytes(event),
                Value::from(uuid::Uuid::now_v7().to_string()),
            ];
            argv.extend(windows.iter().cloned());
            let accepted: i64 = redis.next().evalsha(sha.as_str(), keys, argv).await?;
            Ok(accepted == 1)
        }
    })
    .await
}

/// The first event the decision script wrote on `layout`'s streams, for the baseline to
/// append events of the very same size.
async fn sample_event(redis: &fred::clients::Pool, layout: &Layout) -> anyhow::Result<Bytes> {
    use fred::interfaces::StreamsInterface;
    for stream in layout.streams() {
        let entries: Vec<(String, std::collections::HashMap<String, Bytes>)> =
            redis.next().xrange(&stream, "-", "+", Some(1)).await?;
        if let Some(event) = entries
            .into_iter()
            .next()
            .and_then(|(_, mut fields)| fields.remove(limiter::codec::EVENT_FIELD))
        {
            return Ok(event);
        }
    }
    anyhow::bail!("the script phase recorded no event to copy")
}

fn elapsed_us(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}
