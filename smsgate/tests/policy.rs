//! The policy over HTTP against real Redis: a TOML policy of several rules names each rule's
//! windows in headers and 429s, IPv6 clients are their /64, blocked destinations are 403
//! problems that consume nothing, numbers must be valid (test ranges only when listed),
//! `Idempotency-Key` decides once, and SIGHUP reloads the policy file atomically.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::{TestNumbers, TrustedProxies};
use limiter::Outcome;
use serde_json::{Value, json};
use smsgate::Roles;
use support::{TestApp, expect_problem, free_port};

fn policy_file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("smsgate-policy-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn app(policy: Option<&str>) -> TestApp {
    let path = policy.map(policy_file);
    TestApp::spawn(Roles::INGEST, move |s| {
        s.policy_file = path;
        // The tests speak for many clients through X-Forwarded-For from loopback.
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        s.admin_token = Some(support::ADMIN_TOKEN.into());
    })
    .await
}

async fn send_from(app: &TestApp, ip: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/sms"))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rule_that_refuses_names_its_windows_and_an_exact_retry_after() {
    let app = app(Some(support::SEVERAL_RULES)).await;
    let body = json!({"to": "+14155550123", "message": "hi"});
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let r = send_from(&app, ip, body.clone()).await;
        assert_eq!(r.status(), 202);
        // Shadow rules are the operator's trial: clients never see them.
        assert_eq!(
            r.headers()["ratelimit-policy"],
            r#""1m";q=3;w=60, "number.1m";q=2;w=60"#
        );
    }
    let refused = send_from(&app, "198.51.100.3", body).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let problem = expect_problem(refused, 429, None, "number rule").await;
    assert_eq!(problem["violated"][0]["name"], "number.1m");
    assert_eq!(problem["violated"][0]["rule"], "number");
    assert_eq!(problem["violated"].as_array().unwrap().len(), 1);
    assert_eq!(problem["retry_after"], retry_after);
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    let events = app.events().await;
    let last = &events
        .iter()
        .find(|(_, e)| e.outcome == Outcome::Rejected)
        .unwrap()
        .1;
    assert_eq!(last.violated, ["number.1m"]);
    assert_eq!(last.retry_after, retry_after);
    // The shadow rule would have refused the second request of no IP: each sent once.
    assert!(events.iter().all(|(_, e)| e.shadow_violated.is_empty()));
    assert!(
        last.policy.contains("trial(ip)~shadow=1/1m"),
        "{}",
        last.policy
    );
    app.cleanup().await;
}

#[tokio::test]
async fn ipv6_addresses_of_one_64_share_a_quota_and_other_64s_do_not() {
    let app = app(None).await;
    let body = json!({"to": "+14155550124", "message": "hi"});
    let mut accepted = 0;
    for ip in ["2001:db8:a:b::1", "2001:db8:a:b::2", "2001:db8:a:b:ffff::3"] {
        for _ in 0..2 {
            accepted += usize::from(send_from(&app, ip, body.clone()).await.status() == 202);
        }
    }
    assert_eq!(accepted, 3, "a /64 is one client under the seed's 3/1m");
    assert_eq!(send_from(&app, "2001:db8:a:c::1", body).await.status(), 202);
    app.cleanup().await;
}

#[tokio::test]
async fn blocked_destinations_are_403_problems_that_consume_nothing() {
    let app = app(Some(support::SEVERAL_RULES)).await;
    let cases = [
        (
            "+53 5234 5678",
            "/problems/blocked-destination-country",
            "destination-country",
        ),
        (
            "+1 900 555 0100",
            "/problems/blocked-number-type",
            "number-type",
        ),
    ];
    for (to, kind, reason) in cases {
        for _ in 0..3 {
            let r = send_from(&app, "198.51.100.9", json!({"to": to, "message": "hi"})).await;
            let problem = expect_problem(r, 403, None, reason).await;
            assert_eq!(problem["type"], kind);
            assert_eq!(problem["reason"], reason);
            assert!(problem["id"].is_string());
        }
    }
    let events = app.events().await;
    assert_eq!(events.len(), 6);
    assert!(
        events
            .iter()
            .all(|(_, e)| e.outcome == Outcome::Blocked && e.reason.is_some())
    );
    assert!(
        events
            .iter()
            .any(|(_, e)| e.country.as_deref() == Some("CU"))
    );
    // Nothing was consumed: the same client still has its quota for an allowed number.
    let ok = send_from(
        &app,
        "198.51.100.9",
        json!({"to": "+14155550125", "message": "hi"}),
    )
    .await;
    assert_eq!(ok.status(), 202);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["limits"][0]["remaining"], 2);
    app.cleanup().await;
}

#[tokio::test]
async fn numbers_must_be_valid_and_test_ranges_only_pass_when_listed() {
    let app = app(None).await;
    for to in [
        "+49 000 30 1234567",
        "+49 0000 30 1234567",
        "+44 7700 900123",
    ] {
        let r = send_from(&app, "198.51.100.20", json!({"to": to, "message": "hi"})).await;
        expect_problem(r, 400, Some("to"), to).await;
    }
    let r = send_from(
        &app,
        "198.51.100.20",
        json!({"to": "+49 30 1234567", "message": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert!(
        app.events().await.len() == 1,
        "bad numbers never reach the limiter"
    );
    app.cleanup().await;

    let listed = TestApp::spawn(Roles::INGEST, |s| {
        s.test_numbers = TestNumbers::parse("+447700900").unwrap();
    })
    .await;
    assert_eq!(listed.send("+44 7700 900123").await.status(), 202);
    listed.cleanup().await;
}

#[tokio::test]
async fn fifty_concurrent_repeats_of_an_idempotency_key_are_decided_once() {
    let app = Arc::new(app(None).await);
    let body = json!({"to": "+14155550126", "message": "your code"});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move {
                let r = app
                    .http
                    .post(app.url("/api/sms"))
                    .header("idempotency-key", "\"order-4711\"")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let replayed = r.headers().get("idempotent-replayed").is_some();
                (
                    r.status().as_u16(),
                    replayed,
                    r.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|(status, _, _)| *status == 202));
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    let first = &answers[0].2;
    assert!(
        answers.iter().all(|(_, _, body)| body == first),
        "every repeat is the first answer"
    );
    assert_eq!(app.events().await.len(), 1, "exactly one decision");
    // The repeats consumed nothing; another spelling of the same number is the same request.
    let again = app
        .http
        .post(app.url("/api/sms"))
        .header("idempotency-key", "\"order-4711\"")
        .json(&json!({"to": "+1 (415) 555-0126", "message": "your code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.json::<Value>().await.unwrap(), *first);
    let fresh = app.send("+14155550126").await;
    assert_eq!(
        fresh.json::<Value>().await.unwrap()["limits"][0]["remaining"],
        1
    );
    // The same key with another body is a 422 and records nothing.
    let other = app
        .http
        .post(app.url("/api/sms"))
        .header("idempotency-key", "\"order-4711\"")
        .json(&json!({"to": "+14155550126", "message": "another"}))
        .send()
        .await
        .unwrap();
    expect_problem(other, 422, Some("Idempotency-Key"), "reused key").await;
    let bad = app
        .http
        .post(app.url("/api/sms"))
        .header("idempotency-key", "two words")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400, Some("Idempotency-Key"), "malformed key").await;
    assert_eq!(app.events().await.len(), 2);
    Arc::try_unwrap(app).ok().unwrap().cleanup().await;
}

/// `smsgate ingest` with a policy file, its stderr read line by line into a channel.
struct Process {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    url: String,
}

impl Process {
    fn start(policy: &std::path::Path, namespace: &str) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
            .arg("ingest")
            .env("REDIS_URL", support::redis_url())
            .env("SMSGATE_NAMESPACE", namespace)
            .env("SMSGATE_POLICY", policy)
            .env("SMSGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SMSGATE_DASHBOARD_DIR", "/nonexistent")
            .env("RUST_LOG", "info")
            .env_remove("SMSGATE_ADMIN_TOKEN")
            .env_remove("SMSGATE_LIMITS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a log line containing `needle`.
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(line) = self.lines.recv_timeout(left)
                && line.contains(needle)
            {
                return line;
            }
        }
        panic!("no log line with {needle:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_refuses_a_broken_file() {
    let path = policy_file("[[rule]]\nname = \"number\"\nkey = [\"to\"]\nlimits = \"1/1m\"\n");
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let process = Process::start(&path, &namespace);
    process.wait_for_line("smsgate listening");
    let http = reqwest::Client::new();
    let send = |to: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/sms", process.url);
        async move {
            http.post(url)
                .json(&json!({"to": to, "message": "hi"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send("+14155550130").await.status(), 202);
    assert_eq!(send("+14155550130").await.status(), 429);

    // A broken file is refused with its line; the policy in force stays.
    std::fs::write(
        &path,
        "[[rule]]\nname = \"number\"\nkey = [\"to\"\nlimits = \"9/1m\"\n",
    )
    .unwrap();
    process.hangup();
    let refused = process.wait_for_line("policy file refused");
    assert!(refused.contains("line 4"), "{refused}");
    let still = send("+14155550130").await;
    assert_eq!(still.status(), 429);
    assert_eq!(
        still.headers()["ratelimit-policy"],
        r#""number.1m";q=1;w=60"#
    );

    // A good file takes effect for the next request after the reload.
    std::fs::write(
        &path,
        "[[rule]]\nname = \"number\"\nkey = [\"to\"]\nlimits = \"3/1m\"\n",
    )
    .unwrap();
    process.hangup();
    process.wait_for_line("policy reloaded");
    let next = send("+14155550130").await;
    assert_eq!(next.status(), 202, "the new rule has room: 1 of 3 used");
    assert_eq!(
        next.headers()["ratelimit-policy"],
        r#""number.1m";q=3;w=60"#
    );
    let body: Value = next.json().await.unwrap();
    assert_eq!(body["limits"][0]["remaining"], 1);

    let pool = limiter::connection::connect(&support::redis_url(), 1, Duration::from_secs(5))
        .await
        .unwrap();
    support::drop_namespace(pool.next(), &namespace).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn on_the_cluster_a_quota_held_by_requests_in_flight_is_a_503_with_retry_after() {
    // The reserve/commit protocol runs on a Redis Cluster only; testkit says why it skips.
    let Some(url) = support::cluster_url() else {
        return;
    };
    const POLICY: &str = "[[rule]]\nname = \"number\"\nkey = [\"to\"]\nlimits = \"2/1m\"\n";
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.redis_url = url.clone();
        s.policy_file = Some(policy_file(POLICY));
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        s.admin_token = Some(support::ADMIN_TOKEN.into());
    })
    .await;
    // Two gateways of the same deployment hold both places of the number (reserved, not yet
    // recorded, well within their lease), as if they had stalled between the steps.
    let pool = testkit::redis_at(&url).await;
    let other = limiter::RateLimiter::with_rules(
        limiter::Ruleset::parse_toml(POLICY).unwrap(),
        app.layout(),
    );
    let to = "+14155550123";
    let mut held = Vec::new();
    for ip in ["198.51.100.71", "198.51.100.72"] {
        let request = limiter::SmsRequest {
            ip: ip.parse().unwrap(),
            to,
            from: None,
            message: "hi",
            segments: 1,
        };
        let h = other
            .hold_reservations(pool.next(), &request, &limiter::Context::default())
            .await
            .unwrap();
        assert!(h.accepted());
        held.push(h);
    }
    // The server can neither admit (both might still be recorded) nor refuse (both might be
    // released): after its patience it answers 503, retry shortly, and sends nothing.
    let started = Instant::now();
    let r = send_from(&app, "198.51.100.73", json!({"to": to, "message": "hi"})).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited its patience"
    );
    assert_eq!(r.headers()["retry-after"], "1");
    expect_problem(r, 503, None, "a quota held by requests in flight").await;
    // Recorded within their lease after all, both count: the number's minute is full.
    for h in held {
        let id = h.id();
        let late = other.record_held(pool.next(), h, true).await.unwrap();
        assert_eq!((late.id, late.outcome), (id, Outcome::Accepted));
    }
    let r = send_from(&app, "198.51.100.73", json!({"to": to, "message": "hi"})).await;
    assert_eq!(r.status(), 429, "the two recorded fill the number's minute");
}
