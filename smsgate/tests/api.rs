//! The public HTTP contract of DESIGN.md against a real smsgate and a real Redis: exact
//! admission under concurrency, number normalisation, client identity behind proxies, every
//! bad input, the 202/429 shapes and headers, and failing closed while Redis is down.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use limiter::Outcome;
use reqwest::StatusCode;
use serde_json::{Value, json};
use smsgate::Roles;
use support::{PrivateRedis, TestApp};

#[tokio::test]
async fn two_hundred_concurrent_requests_for_one_client_admit_exactly_three() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    let requests = (0..200).map(|_| app.send("+14155550123"));
    let responses = futures::future::join_all(requests).await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for r in &responses {
        *by_status.entry(r.status().as_u16()).or_default() += 1;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry));
        }
    }
    assert_eq!(by_status, HashMap::from([(202, 3), (429, 197)]));
    // Every answer is on the stream, decodable, with the outcome the client was told.
    let events = app.events().await;
    assert_eq!(events.len(), 200);
    let accepted = events
        .iter()
        .filter(|(_, e)| e.outcome == Outcome::Accepted);
    assert_eq!(accepted.count(), 3);
    app.cleanup().await;
}

#[tokio::test]
async fn fifty_clients_at_once_are_admitted_exactly_three_each() {
    let app = TestApp::spawn(Roles::INGEST, |s| s.partitions = support::partitions(4)).await;
    let numbers: Vec<String> = (0..50)
        .map(|i| format!("+1415555{:04}", 2000 + i))
        .collect();
    let requests = (0..8).flat_map(|_| numbers.iter().map(|n| app.send(n)));
    let responses = futures::future::join_all(requests).await;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for r in responses {
        if r.status() == StatusCode::ACCEPTED {
            let body: Value = r.json().await.unwrap();
            *accepted
                .entry(body["to"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(accepted.len(), 50);
    assert!(accepted.values().all(|n| *n == 3), "{accepted:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn accepted_and_rejected_answers_follow_the_contract() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    let first = app.send("+14155550123").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(
        first.headers()["ratelimit-policy"],
        r#""1m";q=3;w=60, "1d";q=10;w=86400"#
    );
    assert_eq!(
        first.headers()["ratelimit"],
        r#""1m";r=2;t=60, "1d";r=9;t=86400"#
    );
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["to"], "+14155550123");
    assert_eq!(body["segments"], 1);
    assert_eq!(
        uuid::Uuid::parse_str(body["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(
        body["limits"],
        json!([
            {"name": "1m", "limit": 3, "remaining": 2, "reset_after": 60},
            {"name": "1d", "limit": 10, "remaining": 9, "reset_after": 86400}
        ])
    );
    app.send("+14155550123").await;
    app.send("+14155550123").await;
    let refused = app.send("+14155550123").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused.headers().contains_key("ratelimit"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["retry_after"], retry_after);
    assert_eq!(problem["violated"][0]["name"], "1m");
    assert_eq!(problem["violated"][0]["window"], 60);
    assert_eq!(
        problem["limits"][1]["remaining"], 7,
        "the refusal consumed nothing"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn waiting_retry_after_is_enough_and_never_a_second_too_long() {
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.limits = limiter::Policy::parse("3/2s,5/10s").unwrap();
    })
    .await;
    let to = "+14155550177";
    for expected in [2, 1, 0] {
        let body: Value = app.send(to).await.json().await.unwrap();
        assert_eq!(body["limits"][0]["remaining"], expected);
    }
    let refused = app.send(to).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let retried = app.send(to).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    // The stream's decision times let us check the exact wait behind each Retry-After.
    let events = app.events().await;
    let (_, rejected) = events
        .iter()
        .find(|(_, e)| e.outcome == Outcome::Rejected)
        .unwrap();
    let exact_us = events[0].1.at_us + 2_000_000 - rejected.at_us;
    assert!(exact_us > 0);
    assert_eq!(
        rejected.retry_after,
        limiter::model::whole_seconds_up(exact_us)
    );
    assert!(rejected.retry_after * 1_000_000 - u64::try_from(exact_us).unwrap() < 1_000_000);
    app.cleanup().await;
}

#[tokio::test]
async fn every_spelling_of_a_number_shares_one_quota() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    let spellings = [
        "+1 (415) 555-0123",
        "+14155550123",
        "+1.415.555.0123",
        "+1-415-555-0123",
        "+1 415 555 0123",
    ];
    let mut statuses = Vec::new();
    for to in spellings {
        statuses.push(app.send(to).await.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    app.cleanup().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Loopback is 127.0.0.0/8: the "proxy" connects from 127.0.0.2, everyone else from 127.0.0.1.
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.trusted_proxies = ingest::TrustedProxies::parse("127.0.0.2/32").unwrap();
        // Behind a proxy the operator routes need a token.
        s.admin_token = Some(support::ADMIN_TOKEN.into());
    })
    .await;
    let post = |client: &reqwest::Client, xff: String| {
        client
            .post(app.url("/api/sms"))
            .header("x-forwarded-for", xff)
            .json(&json!({"to": "+14155550144", "message": "hi"}))
            .send()
    };
    // An untrusted peer cannot reset its quota by inventing addresses.
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            post(&app.http, format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);

    let proxy = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = post(&proxy, "6.6.6.6, 203.0.113.9".into()).await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = post(&proxy, "203.0.113.9".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = post(&proxy, "203.0.113.10".into()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "another forwarded client has its own quota"
    );

    let ips: Vec<String> = app
        .events()
        .await
        .iter()
        .map(|(_, e)| e.ip.to_string())
        .collect();
    assert_eq!(&ips[..5], ["127.0.0.1"; 5]);
    assert_eq!(
        &ips[5..],
        [
            "203.0.113.9",
            "203.0.113.9",
            "203.0.113.9",
            "203.0.113.9",
            "203.0.113.10"
        ]
    );
    app.cleanup().await;
}

/// (name, content type, body, expected status, field named in `errors`)
type BadInput = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    Option<&'static str>,
);

#[tokio::test]
async fn every_bad_input_is_a_problem_naming_its_field_and_costs_nothing() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    let to = "+14155550155";
    let long = "x".repeat(1_601);
    let huge = format!(r#"{{"to":"{to}","message":"{}"}}"#, "y".repeat(100_000));
    let cases: Vec<BadInput> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            br#"{"to": "#.to_vec(),
            400,
            None,
        ),
        ("empty body", Some("application/json"), vec![], 400, None),
        (
            "array body",
            Some("application/json"),
            b"[]".to_vec(),
            400,
            None,
        ),
        (
            "string body",
            Some("application/json"),
            br#""hi""#.to_vec(),
            400,
            None,
        ),
        (
            "trailing garbage",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"a"}} x"#).into_bytes(),
            400,
            None,
        ),
        (
            "to is a number",
            Some("application/json"),
            br#"{"to": 14155550155, "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "to is null",
            Some("application/json"),
            br#"{"to": null, "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "message is an object",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":{{}}}}"#).into_bytes(),
            400,
            Some("message"),
        ),
        (
            "from is a number",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"a","from":7}}"#).into_bytes(),
            400,
            Some("from"),
        ),
        (
            "missing to",
            Some("application/json"),
            br#"{"message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "missing message",
            Some("application/json"),
            format!(r#"{{"to":"{to}"}}"#).into_bytes(),
            400,
            Some("message"),
        ),
        (
            "unknown field",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"a","priority":1}}"#).into_bytes(),
            400,
            Some("priority"),
        ),
        (
            "duplicate field",
            Some("application/json"),
            format!(r#"{{"to":"{to}","to":"{to}","message":"a"}}"#).into_bytes(),
            400,
            Some("to"),
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"to\":\"+14155550155\",\"message\":\"\xff\xfe\"}".to_vec(),
            400,
            None,
        ),
        (
            "number without country",
            Some("application/json"),
            br#"{"to": "4155550155", "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "number too short",
            Some("application/json"),
            br#"{"to": "+1 415 555 01", "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "number with letters",
            Some("application/json"),
            br#"{"to": "+1-800-FLOWERS", "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "empty number",
            Some("application/json"),
            br#"{"to": "", "message": "a"}"#.to_vec(),
            400,
            Some("to"),
        ),
        (
            "empty message",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":""}}"#).into_bytes(),
            422,
            Some("message"),
        ),
        (
            "blank message",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"  \n "}}"#).into_bytes(),
            422,
            Some("message"),
        ),
        (
            "over-long message",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"{long}"}}"#).into_bytes(),
            422,
            Some("message"),
        ),
        (
            "bad sender",
            Some("application/json"),
            format!(r#"{{"to":"{to}","message":"a","from":"Way too long sender"}}"#).into_bytes(),
            422,
            Some("from"),
        ),
        (
            "huge body",
            Some("application/json"),
            huge.into_bytes(),
            413,
            None,
        ),
        (
            "text/plain",
            Some("text/plain"),
            format!(r#"{{"to":"{to}","message":"a"}}"#).into_bytes(),
            415,
            None,
        ),
        (
            "form encoded",
            Some("application/x-www-form-urlencoded"),
            format!("to={to}&message=a").into_bytes(),
            415,
            None,
        ),
        (
            "no content type",
            None,
            format!(r#"{{"to":"{to}","message":"a"}}"#).into_bytes(),
            415,
            None,
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, content_type, body, status, field) in cases {
        let response = app.post_raw("/api/sms", content_type, body).await;
        support::expect_problem(response, status, field, name).await;
    }
    assert!(
        app.events().await.is_empty(),
        "bad input never reaches the stream"
    );
    let body: Value = app.send(to).await.json().await.unwrap();
    assert_eq!(
        body["limits"][0]["remaining"], 2,
        "bad input consumed no quota"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn redis_down_fails_closed_with_503_and_recovers_without_restart() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let app = TestApp::spawn(Roles::INGEST, move |s| s.redis_url = url).await;
    assert_eq!(
        app.send("+14155550166").await.status(),
        StatusCode::ACCEPTED
    );

    redis.kill();
    let started = Instant::now();
    let down = app.send("+14155550166").await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast, does not hang"
    );
    assert_eq!(down.headers()["retry-after"], "1");
    assert_eq!(down.headers()["content-type"], "application/problem+json");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app.send("+14155550166").await.status();
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    assert_eq!(
        app.send("+14155550188").await.status(),
        StatusCode::ACCEPTED
    );
    let get = |path: &'static str| app.http.get(app.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "smsgate_requests_total{outcome=\"accepted\"}",
        "smsgate_http_request_duration_seconds_bucket",
        "smsgate_redis_script_duration_seconds_bucket",
        "smsgate_decide_batch_size_bucket{le=\"1\"}",
        "smsgate_build_info",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let missing = get("/api/nothing-here").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_operator_surface_needs_the_admin_token_when_one_is_set() {
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.admin_token = Some(support::ADMIN_TOKEN.into())
    })
    .await;
    let session: Value = app.get_json("/api/session").await;
    assert_eq!(
        session,
        json!({"auth_required": true, "authenticated": false})
    );
    let wrong = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"token": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let login = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"token": support::ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::NO_CONTENT);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && !cookie.contains(support::ADMIN_TOKEN));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let session: Value = app
        .http
        .get(app.url("/api/session"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["authenticated"], true);
    // The public API never needs the token.
    assert_eq!(
        app.send("+14155550199").await.status(),
        StatusCode::ACCEPTED
    );
    app.cleanup().await;
}

#[tokio::test]
async fn serving_beyond_loopback_without_a_token_is_refused() {
    let mut settings = smsgate::Settings::defaults();
    settings.listen = "0.0.0.0:0".parse().unwrap();
    settings.admin_token = None;
    let refused = smsgate::App::build(settings.clone(), Roles::INGEST).await;
    assert!(
        refused
            .err()
            .unwrap()
            .to_string()
            .contains("SMSGATE_ADMIN_TOKEN")
    );
    settings.admin_token = Some(support::ADMIN_TOKEN.into());
    settings.redis_url = support::redis_url();
    assert!(smsgate::App::build(settings, Roles::INGEST).await.is_ok());
}
