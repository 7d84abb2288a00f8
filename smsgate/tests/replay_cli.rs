//! `smsgate replay` and `smsgate audit` as an operator runs them (exit codes for cron, JSON
//! lines, filters), and the archive routes of a real `smsgate archiver` process behind the
//! admin token.

#![allow(clippy::unwrap_used)]

mod archiver_support;

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use archiver_support::{Env, Process, eventually, free_port, redis_url};
use reqwest::StatusCode;
use serde_json::Value;

/// `smsgate <args>` on `env`'s namespace and database, to completion, stdout captured.
fn run(env: &Env, args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(args)
        .env("REDIS_URL", redis_url())
        .env("DATABASE_URL", database_url)
        .env("SMSGATE_NAMESPACE", &env.namespace)
        .env("SMSGATE_PARTITIONS", env.layout.partitions().to_string())
        .env("SMSGATE_LIMITS", "3/1m")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `n` real decisions under `3/1m` over 20 clients (so many are rejected), in order.
async fn decide(env: &Env, n: usize) {
    let limiter =
        limiter::RateLimiter::new(limiter::Policy::parse("3/1m").unwrap(), env.layout.clone());
    for i in 0..n {
        let to = format!("+1415555{:04}", i % 10);
        let request = limiter::SmsRequest {
            ip: format!("198.51.100.{}", i % 2).parse().unwrap(),
            to: &to,
            from: None,
            message: "hello",
            segments: 1,
        };
        limiter.decide(env.redis.next(), &request).await.unwrap();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn replay_prints_every_event_once_and_audit_exits_by_the_state_of_the_record() {
    let env = Env::new(2).await;
    decide(&env, 400).await;
    env.archive_once(&[]);
    decide(&env, 200).await;
    let db = env.database_url.clone();

    let replay = run(&env, &["replay"], &db);
    assert!(replay.status.success(), "{replay:?}");
    let lines: Vec<Value> = stdout(&replay)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 600);
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 600);
    for key in [
        "stream_id",
        "at",
        "ip",
        "to",
        "message",
        "outcome",
        "violated",
        "retry_after",
    ] {
        assert!(
            lines[0].get(key).is_some(),
            "{key} missing from {}",
            lines[0]
        );
    }
    let rejected = run(
        &env,
        &["replay", "--outcome", "rejected", "--format", "json"],
        &db,
    );
    let rejected = stdout(&rejected);
    let expected = lines.iter().filter(|l| l["outcome"] == "rejected").count();
    assert!(expected > 0);
    assert_eq!(rejected.lines().count(), expected);
    let table = run(
        &env,
        &["replay", "--format", "table", "--to", "+14155550007"],
        &db,
    );
    let table = stdout(&table);
    assert!(table.lines().next().unwrap().starts_with("AT"));
    assert!(table.lines().skip(1).all(|l| l.contains("+14155550007")));
    assert_eq!(
        table.lines().count() - 1,
        lines.iter().filter(|l| l["to"] == "+14155550007").count()
    );

    let audit = run(&env, &["audit", "--policy", "5/1m"], &db);
    let report = stdout(&audit);
    assert_eq!(audit.status.code(), Some(0), "{report}");
    assert!(report.contains("600 events checked"), "{report}");
    assert!(report.contains("what if: under 5/1m"), "{report}");
    let since = run(&env, &["audit", "--since", "1h"], &db);
    assert_eq!(since.status.code(), Some(0), "{}", stdout(&since));

    // One archived rejection rewritten as accepted: exit 1, and the event is named.
    let pg = env.pg().await;
    let victim: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM sms_events WHERE outcome = 'rejected' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    sqlx::query("UPDATE sms_events SET outcome = 'accepted', violated = '{}', retry_after = 0 WHERE id = $1")
        .bind(victim)
        .execute(&pg)
        .await
        .unwrap();
    let audit = run(&env, &["audit"], &db);
    let report = stdout(&audit);
    assert_eq!(audit.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("MISMATCH event {victim}")),
        "{report}"
    );
    assert!(report.contains("NOT consistent"));
    pg.close().await;

    // Could not check at all: exit 2, not 1.
    let port = free_port();
    let unreachable = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let audit = run(&env, &["audit"], &unreachable);
    assert_eq!(audit.status.code(), Some(2));
}

#[tokio::test]
async fn history_and_audit_routes_serve_the_archive_behind_the_admin_token() {
    let env = Env::new(1).await;
    decide(&env, 300).await;
    env.archive_once(&[]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _archiver = Process(env.smsgate(
        &["archiver"],
        &[
            ("SMSGATE_LISTEN", &listen),
            ("SMSGATE_ADMIN_TOKEN", "test-admin-token-0123456789abcdef"),
        ],
    ));
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    eventually(Duration::from_secs(15), "the archiver serves", || {
        let http = http.clone();
        let ready = url("/readyz");
        async move {
            http.get(ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        }
    })
    .await;
    let get = |path: &str, token: Option<&str>| {
        let request = http.get(url(path));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };

    for route in ["/api/history", "/api/audit?to=%2B14155550003"] {
        for token in [None, Some("guess")] {
            let refused = get(route, token).await;
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{route}");
            assert_eq!(
                refused.headers()["content-type"],
                "application/problem+json"
            );
        }
    }

    let pg = env.pg().await;
    let (accepted, rejected): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'accepted'), count(*) FILTER (WHERE outcome = 'rejected') FROM sms_events",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    let history: Value = get(
        "/api/history?bucket=hour",
        Some("test-admin-token-0123456789abcdef"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(history["bucket"], "hour");
    let buckets = history["buckets"].as_array().unwrap();
    assert!((24..=25).contains(&buckets.len()), "{}", buckets.len());
    let sum = |key: &str| {
        buckets
            .iter()
            .map(|b| b[key].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!((sum("accepted"), sum("rejected")), (accepted, rejected));
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(starts[0].ends_with(":00:00Z"));
    let days: Value = get(
        "/api/history?bucket=day&since=2020-01-01T00:00:00Z&until=2020-01-04T00:00:00Z",
        Some("test-admin-token-0123456789abcdef"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(days["buckets"].as_array().unwrap().len(), 3);
    assert_eq!(days["buckets"][0]["start"], "2020-01-01T00:00:00Z");
    assert_eq!(days["buckets"][0]["accepted"], 0);
    // A range reaching into the future ends at the current hour, not with zeros for hours to come.
    let since = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = (chrono::Utc::now() + chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ahead: Value = get(
        &format!("/api/history?bucket=hour&since={since}&until={until}"),
        Some("test-admin-token-0123456789abcdef"),
    )
    .await
    .json()
    .await
    .unwrap();
    let last = ahead["buckets"].as_array().unwrap().last().unwrap()["start"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = chrono::DateTime::parse_from_rfc3339(&last).unwrap();
    assert!(last <= chrono::Utc::now(), "a bucket in the future: {last}");

    let number = "+14155550003";
    let recorded: Vec<String> =
        sqlx::query_scalar(r#"SELECT id::text FROM sms_events WHERE "to" = $1 ORDER BY at"#)
            .bind(number)
            .fetch_all(&pg)
            .await
            .unwrap();
    assert!(!recorded.is_empty());
    for route in ["/api/audit?to=%2B14155550003", "/api/audit?to=+14155550003"] {
        let audit: Value = get(route, Some("test-admin-token-0123456789abcdef"))
            .await
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, recorded, "{route}");
    }
    let limited: Value = get(
        "/api/audit?to=%2B14155550003&limit=2",
        Some("test-admin-token-0123456789abcdef"),
    )
    .await
    .json()
    .await
    .unwrap();
    let newest: Vec<&str> = limited["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        newest,
        recorded[recorded.len() - 2..],
        "the newest two, oldest first"
    );

    for (route, field) in [
        ("/api/audit", "to"),
        ("/api/audit?ip=not-an-ip", "ip"),
        ("/api/audit?to=%2B1&limit=0", "limit"),
        ("/api/history?bucket=week", "bucket"),
        ("/api/history?bucket=", "bucket"),
        ("/api/history?since=yesterday", "since"),
    ] {
        let bad = get(route, Some("test-admin-token-0123456789abcdef")).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{route}");
        assert_eq!(bad.headers()["content-type"], "application/problem+json");
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{route}: {body}");
    }
    pg.close().await;
}

#[tokio::test]
async fn after_retention_drops_old_days_replay_and_audit_name_the_range_no_longer_held() {
    let env = Env::new(1).await;
    decide(&env, 60).await;
    env.archive_once(&[]);
    let pg = env.pg().await;
    // An accepted request archived forty days ago, in its own day partition.
    sqlx::query("SELECT sms_archive_ensure_day('accepted', (now() - interval '40 days')::date)")
        .execute(&pg)
        .await
        .unwrap();
    sqlx::query(
        r#"INSERT INTO sms_events
            (id, stream_id, partition, at, at_us, ip, "to", message, segments, outcome,
             retry_after, policy)
        SELECT gen_random_uuid(), '1-0', 0, t, (extract(epoch FROM t) * 1000000)::bigint,
               '198.51.100.9', '+14155550999', 'old', 1, 'accepted', 0, '3/1m'
        FROM (SELECT date_trunc('second', now() - interval '40 days') AS t) AS s"#,
    )
    .execute(&pg)
    .await
    .unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sms_events")
            .fetch_one(&pg)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 61);

    // `archiver --once` runs the retention step too: the old day goes, today's stay.
    env.archive_once(&[("SMSGATE_RETENTION", "accepted=30d")]);
    assert_eq!(count().await, 60);

    let db = env.database_url.clone();
    let replay = run(&env, &["replay"], &db);
    assert!(replay.status.success(), "{replay:?}");
    assert_eq!(stdout(&replay).lines().count(), 60);
    let notice = String::from_utf8_lossy(&replay.stderr);
    assert!(
        notice.contains("notice: the archive no longer holds accepted before"),
        "{notice}"
    );
    // Asked only from a time the archive fully holds, there is nothing to say.
    let recent = run(&env, &["replay", "--since", "1h"], &db);
    assert!(!String::from_utf8_lossy(&recent.stderr).contains("no longer holds"));

    let audit = run(&env, &["audit"], &db);
    let report = stdout(&audit);
    assert_eq!(audit.status.code(), Some(0), "{report}");
    assert!(report.contains("60 events checked"), "{report}");
    assert!(report.contains("not held: accepted before"), "{report}");
    assert!(report.contains("judged from"), "{report}");
}
