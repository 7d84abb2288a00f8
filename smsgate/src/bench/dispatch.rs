//! `smsgate bench --mode dispatch`: how fast a dispatcher empties a pre-filled stream into a
//! provider that answers at once, and what it costs in CPU per message.
//!
//! `--events` accepted decisions are made on a fresh namespace first (through the decision
//! script, as ingest makes them). Then a real `smsgate dispatcher` process (this binary) is
//! started against a Twilio-shaped endpoint served by this process, which answers every
//! `POST …/Messages.json` with 201 and a sid, as Twilio does. Measured from the provider's
//! first request to its last: messages per second, and the dispatcher process's own CPU time
//! (user + system, from `/proc/<pid>/stat`) per message, so the endpoint's work is not counted.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use limiter::{Layout, Policy, RateLimiter, SmsRequest};
use tokio::sync::Mutex;

use super::cpu::process_cpu;
use super::{BenchArgs, uuid_suffix};

/// What the endpoint saw: every request, and when the first and the last came.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    first_and_last: Mutex<Option<(Instant, Instant)>>,
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let namespace = format!("bench-dispatch-{}", uuid_suffix());
    let layout = Layout::new(namespace.clone(), args.partitions);
    let pool = crate::app::connect_redis(&args.redis_url).await?;
    println!(
        "smsgate bench --mode dispatch: {} messages, {} partition(s), redis {}",
        args.events, args.partitions, args.redis_url
    );

    let made = Instant::now();
    prefill(&pool, &layout, args.events).await?;
    println!(
        "pre-filled {} accepted decisions in {:.1} s",
        args.events,
        made.elapsed().as_secs_f64()
    );

    let seen = Arc::new(Seen::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(answer_at_once),
        )
        .with_state(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut dispatcher = spawn_dispatcher(args, &namespace, &format!("http://{endpoint}"))?;
    let pid = dispatcher.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut cpu_at_first = None;
    let total = args.events as u64;
    while seen.requests.load(Ordering::Relaxed) < total {
        if cpu_at_first.is_none() && seen.requests.load(Ordering::Relaxed) > 0 {
            cpu_at_first = Some(process_cpu(pid)?);
        }
        if let Some(status) = dispatcher.try_wait()? {
            anyhow::bail!("the dispatcher exited ({status}) before it was done");
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {total} messages reached the provider in 10 minutes",
                seen.requests.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu_at_last = process_cpu(pid)?;
    // A moment more: a message sent twice would show here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = seen.requests.load(Ordering::Relaxed);
    let _ = dispatcher.kill();
    let _ = dispatcher.wait();
    server.abort();
    let _ = limiter::connection::drop_namespace(pool.next(), &namespace).await;

    let (first, last) = seen
        .first_and_last
        .lock()
        .await
        .context("the provider saw no request")?;
    let elapsed = last.duration_since(first).as_secs_f64().max(f64::EPSILON);
    let cpu = cpu_at_last - cpu_at_first.unwrap_or(0.0);
    println!(
        "{:<10} {:>12} {:>10} {:>12} {:>16}",
        "messages", "requests", "seconds", "messages/s", "CPU µs/message"
    );
    println!(
        "{:<10} {:>12} {:>10.2} {:>12.0} {:>16.0}",
        total,
        requests,
        elapsed,
        (total.saturating_sub(1)) as f64 / elapsed,
        cpu * 1e6 / total as f64
    );
    anyhow::ensure!(
        requests == total,
        "{requests} provider requests for {total} messages"
    );
    Ok(())
}

/// `events` accepted decisions, one per client, made through the decision script.
async fn prefill(pool: &fred::clients::Pool, layout: &Layout, events: usize) -> anyhow::Result<()> {
    let limiter = Arc::new(RateLimiter::new(
        Policy::parse("1000000/1m")?,
        layout.clone(),
    ));
    limiter.load(pool.next()).await?;
    let chunks: Vec<_> = (0..events)
        .collect::<Vec<_>>()
        .chunks(events.div_ceil(16).max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let tasks = chunks.into_iter().map(|chunk| {
        let (pool, limiter) = (pool.clone(), limiter.clone());
        tokio::spawn(async move {
            for i in chunk {
                let to = format!("+1555{:07}", i % 10_000_000);
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).into();
                let request = SmsRequest {
                    ip,
                    to: &to,
                    from: None,
                    message: "your code is 123456",
                    segments: 1,
                };
                limiter.decide(pool.next(), &request).await?;
            }
            anyhow::Ok(())
        })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    Ok(())
}

async fn answer_at_once(
    axum::extract::State(seen): axum::extract::State<Arc<Seen>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let n = seen.requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let mut span = seen.first_and_last.lock().await;
    *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
    drop(span);
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        format!(r#"{{"sid":"SM{n:032x}","status":"queued"}}"#),
    )
}

fn spawn_dispatcher(args: &BenchArgs, namespace: &str, base_url: &str) -> anyhow::Result<Child> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Command::new(std::env::current_exe()?)
        .arg("dispatcher")
        .env("REDIS_URL", &args.redis_url)
        .env("SMSGATE_NAMESPACE", namespace)
        .env("SMSGATE_PARTITIONS", args.partitions.to_string())
        .env("SMSGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SMSGATE_PROVIDER", "twilio")
        .env("TWILIO_ACCOUNT_SID", "ACbench0000000000000000000000000000")
        .env("TWILIO_AUTH_TOKEN", "bench-auth-token-not-a-secret")
        .env("TWILIO_FROM", "+15550000000")
        .env("TWILIO_BASE_URL", base_url)
        .env("SMSGATE_PROVIDER_TPS", "1000000")
        .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
        .env_remove("SMSGATE_ADMIN_TOKEN")
        .env_remove("SMSGATE_CALLBACK_SECRET")
        .env_remove("SMSGATE_PUBLIC_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting `smsgate dispatcher`")
}
