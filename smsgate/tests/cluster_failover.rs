//! A Redis Cluster primary killed (SIGKILL) under load: its replica is promoted, requests
//! succeed again without restarting smsgate, and an acknowledged event (a 202 or 429) can be
//! missing from the streams only if it was acknowledged within the replication window just
//! before the kill. Prints the measured outage and losses. Needs `SMSGATE_CLUSTER_URL` (a
//! cluster from `scripts/cluster.sh start`, whose replicas can take over); the killed node is
//! restarted from its `redis.conf` at the end and rejoins as a replica.
//!
//! A test binary of its own: cargo runs test binaries one after the other, so no other cluster
//! test sees the failover.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::CustomCommand;
use fred::types::config::Server;
use rand::Rng;
use serde_json::Value;
use smsgate::Roles;
use support::TestApp;

const PARTITIONS: u16 = 16;

/// One answered request.
struct Answer {
    /// Since the start of the run.
    at: Duration,
    status: u16,
    id: Option<String>,
    partition: u16,
}

async fn node_command(
    redis: &Client,
    server: &Server,
    cmd: &'static str,
    args: Vec<&str>,
) -> String {
    redis
        .with_cluster_node(server.clone())
        .custom(CustomCommand::new_static(cmd, None, false), args)
        .await
        .unwrap()
}

/// The primary serving `slot`, from `CLUSTER NODES`.
async fn primary_of(redis: &Client, slot: u16) -> Server {
    let nodes: String = redis
        .custom(
            CustomCommand::new_static("CLUSTER", None, false),
            vec!["NODES"],
        )
        .await
        .unwrap();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
            continue;
        }
        let serves = fields[8..].iter().any(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            match (first.parse::<u16>(), last.parse::<u16>()) {
                (Ok(first), Ok(last)) => (first..=last).contains(&slot),
                _ => false,
            }
        });
        if serves {
            let address = fields[1].split('@').next().unwrap();
            let (host, port) = address.rsplit_once(':').unwrap();
            return Server::new(host, port.parse().unwrap());
        }
    }
    panic!("no primary serves slot {slot}:\n{nodes}");
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_and_smsgate_recovers_without_restart() {
    let Some(url) = support::cluster_url() else {
        return;
    };
    let app = Arc::new(
        TestApp::spawn(Roles::INGEST, |s| {
            s.redis_url = url.clone();
            s.partitions = PARTITIONS;
        })
        .await,
    );
    let layout = app.layout();
    let observer = limiter::connection::connect(&url, 1, Duration::from_secs(5))
        .await
        .unwrap();
    let redis = observer.next().clone();
    let slot = |p: u16| fred::util::redis_keyslot(layout.stream(p).as_bytes());
    let victim = primary_of(&redis, slot(0)).await;
    let mut on_victim = HashSet::new();
    for p in 0..PARTITIONS {
        if primary_of(&redis, slot(p)).await == victim {
            on_victim.insert(p);
        }
    }
    let info = node_command(&redis, &victim, "INFO", vec!["server"]).await;
    let pid = info_field(&info, "process_id").unwrap();
    let dir: Vec<String> = redis
        .with_cluster_node(victim.clone())
        .custom(
            CustomCommand::new_static("CONFIG", None, false),
            vec!["GET", "dir"],
        )
        .await
        .unwrap();
    let conf = std::path::Path::new(&dir[1]).join("redis.conf");

    // 16 clients of the API at once, each over a fresh number each time (no 429 noise), for
    // as long as it takes: 3 s before the kill, then until 5 s of uninterrupted success.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (app, stop, layout) = (app.clone(), stop.clone(), layout.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let to = format!("+14152{:06}", rand::rng().random_range(0..1_000_000));
                    let partition = layout
                        .partition_of(&limiter::layout::client_key(&[127, 0, 0, 1].into(), &to));
                    let response = app
                        .http
                        .post(app.url("/api/sms"))
                        .json(&serde_json::json!({"to": to, "message": "failover"}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or_default();
                    answers.push(Answer {
                        at: start.elapsed(),
                        status,
                        id: body["id"].as_str().map(str::to_owned),
                        partition,
                    });
                    if status == 503 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = start.elapsed();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -9 {pid}");

    // Wait for the outage to end, then for 5 s without a single failure.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut healthy_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready = app
            .http
            .post(app.url("/api/sms"))
            .json(&serde_json::json!({"to": "+14155550199", "message": "probe"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if ready == 202 || ready == 429 {
            let since = *healthy_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(5)
                && start.elapsed() > killed_at + Duration::from_secs(2)
            {
                break;
            }
        } else {
            healthy_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "smsgate never recovered from the failover"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let after = |a: &&Answer| a.at >= killed_at;
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(after)
        .filter(|a| a.status != 202 && a.status != 429)
        .collect();
    assert!(
        failed.iter().all(|a| a.status == 503),
        "failures are 503s, never another status: {:?}",
        failed.iter().map(|a| a.status).collect::<HashSet<_>>()
    );
    let last_failure = failed.iter().map(|a| a.at).max().unwrap_or(killed_at);
    let outage = last_failure - killed_at;
    let victim_failures = failed
        .iter()
        .filter(|a| on_victim.contains(&a.partition))
        .count();
    // After the outage every request succeeds, on every partition, the killed node's included.
    let recovered: Vec<&Answer> = answers.iter().filter(|a| a.at > last_failure).collect();
    assert!(
        recovered
            .iter()
            .any(|a| on_victim.contains(&a.partition) && a.status == 202),
        "the promoted replica serves the killed primary's partitions"
    );

    // Acknowledged events missing from the streams: only those the dead primary had not yet
    // replicated, i.e. acknowledged shortly before the kill.
    let on_streams: HashSet<String> = app
        .events()
        .await
        .into_iter()
        .map(|(_, e)| e.id.to_string())
        .collect();
    let acknowledged: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 202 || a.status == 429)
        .collect();
    let missing: Vec<&Answer> = acknowledged
        .iter()
        .copied()
        .filter(|a| !on_streams.contains(a.id.as_deref().unwrap_or_default()))
        .collect();
    let earliest_missing = missing.iter().map(|a| killed_at.saturating_sub(a.at)).max();

    // The archive after the failover holds exactly what the streams hold: an archiver drains
    // the cluster into a fresh database, and no acknowledged event is missing from it beyond
    // those the streams lost above.
    let pg = archiver::connect_postgres(&app.settings.database_url)
        .await
        .unwrap();
    let config = archiver::ArchiverConfig {
        consumer: "failover-test".into(),
        ..archiver::ArchiverConfig::default()
    };
    let drained = archiver::Archiver::new(observer.clone(), pg.clone(), layout.clone(), config)
        .drain()
        .await
        .unwrap();
    let archived: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM sms_events")
        .fetch_all(&pg)
        .await
        .unwrap();
    let archived: HashSet<String> = archived.iter().map(ToString::to_string).collect();
    pg.close().await;
    assert_eq!(
        archived, on_streams,
        "the archive holds every event of the streams"
    );
    let missing_from_archive = acknowledged
        .iter()
        .filter(|a| !archived.contains(a.id.as_deref().unwrap_or_default()))
        .count();
    assert_eq!(missing_from_archive, missing.len());
    eprintln!(
        "archive after failover: {} rows from {} drained entries; acknowledged events missing from the archive: {missing_from_archive}",
        archived.len(),
        drained.entries
    );
    eprintln!(
        "failover figures: killed the primary {victim} (pid {pid}) owning {} of {PARTITIONS} partitions at +{:.2} s; \
         {} requests answered, {} acknowledged; 503s after the kill: {} ({} on the killed primary's partitions, {} on others); \
         outage (kill → last 503): {:.2} s; acknowledged events missing from the streams: {} (oldest acknowledged {:?} before the kill)",
        on_victim.len(),
        killed_at.as_secs_f64(),
        answers.len(),
        acknowledged.len(),
        failed.len(),
        victim_failures,
        failed.len() - victim_failures,
        outage.as_secs_f64(),
        missing.len(),
        earliest_missing,
    );
    for a in &missing {
        assert!(
            on_victim.contains(&a.partition),
            "a lost event belongs to the killed primary"
        );
        assert!(
            a.at <= killed_at && killed_at - a.at <= Duration::from_secs(1),
            "a lost event was acknowledged within the replication window before the kill, not {:?} before",
            killed_at.saturating_sub(a.at)
        );
    }
    assert!(outage < Duration::from_secs(30), "failover took {outage:?}");

    // Bring the killed node back; it rejoins as a replica of the promoted one.
    if conf.exists() {
        let restarted = std::process::Command::new("redis-server")
            .arg(&conf)
            .status()
            .unwrap();
        assert!(restarted.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The client of the cluster talks to primaries only: ask the node itself.
            let role = std::process::Command::new("redis-cli")
                .args(["-h", &victim.host, "-p", &victim.port.to_string()])
                .args(["info", "replication"])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .and_then(|i| {
                    Some((
                        info_field(&i, "role")?,
                        info_field(&i, "master_link_status"),
                    ))
                });
            if let Some((role, link)) = role
                && role == "slave"
                && link.as_deref() == Some("up")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the killed node did not rejoin as a replica"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        eprintln!("{} not found: the killed node is left down", conf.display());
    }
    Arc::into_inner(app).unwrap().cleanup().await;
}
