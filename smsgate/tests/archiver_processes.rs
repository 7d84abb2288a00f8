//! Two `smsgate archiver` processes at once share the work, and `smsgate serve` keeps taking
//! requests through a Postgres outage, trims nothing meanwhile, reports a growing lag, and
//! archives everything exactly once when Postgres is back.

#![allow(clippy::unwrap_used)]

mod archiver_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use archiver_support::{Env, PgServer, Process, counts, eventually, free_port};

async fn metric(http: &reqwest::Client, port: u16, name: &str) -> Option<f64> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn two_archiver_processes_at_once_archive_every_event_exactly_once() {
    let env = Env::new(2).await;
    env.decide(30_000).await;
    let http = reqwest::Client::new();
    let ports = [free_port(), free_port()];
    let _archivers: Vec<Process> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            Process(env.smsgate(&["archiver"], &[("SMSGATE_LISTEN", &listen)]))
        })
        .collect();
    let pg = loop {
        // The first process creates the database; wait for it.
        if let Ok(pg) = archiver::connect_postgres(&env.database_url).await {
            break pg;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eventually(Duration::from_secs(60), "30,000 rows", || async {
        counts(&pg).await.0 == 30_000
    })
    .await;
    let mut archived = Vec::new();
    for port in ports {
        let mut n = None;
        for _ in 0..100 {
            n = metric(&http, port, "smsgate_archiver_events_archived_total").await;
            if n.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        archived.push(n.unwrap_or(0.0));
    }
    assert_eq!(counts(&pg).await, (30_000, 30_000), "no duplicate rows");
    // Together exactly once. How the work splits is up to timing: on a fast Redis the first
    // process can drain everything before the second has connected (seen on the cluster run),
    // so the split is not asserted; smsgate/tests/cluster.rs runs two archivers side by side.
    assert_eq!(archived.iter().sum::<f64>(), 30_000.0, "{archived:?}");
    pg.close().await;
}

#[tokio::test]
async fn through_a_postgres_outage_ingest_serves_nothing_is_trimmed_and_nothing_is_lost() {
    let server = PgServer::start();
    let env = Env::on(&server.url(), 1).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = Process(env.smsgate(
        &["serve"],
        &[
            ("SMSGATE_LISTEN", &listen),
            ("SMSGATE_ARCHIVE_INTERVAL", "1s"),
            ("SMSGATE_LIMITS", "3/1m"),
        ],
    ));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/sms");
    eventually(Duration::from_secs(20), "serve is up", || async {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
    })
    .await;
    let mut ids = HashSet::new();
    let send = |i: usize| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .post(url)
                .json(&serde_json::json!({"to": format!("+1415555{:04}", i % 50), "message": "hi"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status == 202 || status == 429, "ingest answers {status}");
            let body: serde_json::Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_owned()
        }
    };
    for i in 0..200 {
        ids.insert(send(i).await);
    }
    let pg = env.pg().await;
    eventually(
        Duration::from_secs(20),
        "the first 200 archived",
        || async { counts(&pg).await.0 == 200 },
    )
    .await;
    pg.close().await;

    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let ready = http.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready before the outage");

    server.stop();
    for i in 200..800 {
        ids.insert(send(i).await);
    }
    // A probe with a 1 s timeout gets its answer: not ready, within the second, although the
    // Postgres pool would wait 5 s for a connection.
    let started = Instant::now();
    let probe = http
        .get(&readyz)
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/readyz answers within 1 s with Postgres down");
    assert_eq!(probe.status(), 503, "not ready without Postgres");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(probe.headers()["retry-after"], "1");

    // The archiver has tried (and failed) twice since the outage began: a connection attempt
    // to a stopped server can take the pool's whole acquire timeout (5 s) to fail.
    let errors = || async {
        metric(&http, port, "smsgate_archiver_postgres_errors_total")
            .await
            .unwrap_or(0.0)
    };
    let before = errors().await;
    eventually(
        Duration::from_secs(30),
        "two more archive attempts fail",
        || async { errors().await >= before + 2.0 },
    )
    .await;
    // Only now is the absence of trimming evidence: the archiver ran and kept everything.
    assert!(env.xlen().await >= 600, "nothing unarchived is trimmed");
    eventually(
        Duration::from_secs(10),
        "the lag metric shows the backlog",
        || async {
            metric(&http, port, "smsgate_archiver_lag_entries")
                .await
                .is_some_and(|lag| lag >= 600.0)
        },
    )
    .await;

    server.resume();
    let pg = env.pg().await;
    eventually(Duration::from_secs(60), "all 800 archived", || async {
        counts(&pg).await.0 == 800
    })
    .await;
    assert_eq!(counts(&pg).await, (800, 800));
    let archived: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM sms_events")
        .fetch_all(&pg)
        .await
        .unwrap();
    let archived: HashSet<String> = archived.iter().map(ToString::to_string).collect();
    assert_eq!(archived, ids, "exactly the events the API answered for");
    eventually(
        Duration::from_secs(10),
        "the lag is back to zero",
        || async { metric(&http, port, "smsgate_archiver_lag_entries").await == Some(0.0) },
    )
    .await;
    pg.close().await;
    drop(env);
}
