//! Issue 12's findings, each against a real `App` on a real socket: tokens that are no token,
//! sessions, throttled failures, slow and idle connections, metric labels, problem+json on the
//! login route, and control characters in text fields.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smsgate::{App, Roles, Settings};
use support::{ADMIN_TOKEN, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `SMSGATE_ADMIN_TOKEN` value of a shipped example file.
fn shipped_example(path: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("SMSGATE_ADMIN_TOKEN="))
        .unwrap()
        .trim()
        .to_owned()
}

fn settings() -> Settings {
    let mut settings = Settings::defaults();
    settings.redis_url = support::redis_url();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings
}

async fn refusal(settings: Settings) -> String {
    match App::build(settings, Roles::INGEST).await {
        Ok(_) => panic!("the app started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn empty_placeholder_and_short_tokens_are_no_token_on_a_public_bind() {
    let weak = [
        String::new(),
        shipped_example(".env.example"),
        shipped_example("deploy/systemd/smsgate.env.example"),
        "fifteen-chars-x".to_owned(),
    ];
    for token in weak {
        let mut settings = settings();
        settings.listen = "0.0.0.0:0".parse().unwrap();
        settings.admin_token = Some(token.as_str().into());
        let refused = refusal(settings).await;
        assert!(
            refused.contains("SMSGATE_ADMIN_TOKEN"),
            "`{token}`: {refused}"
        );
    }
    // On loopback an empty token is no token: the operator API says it needs none.
    let app = TestApp::spawn(Roles::INGEST, |s| s.admin_token = Some("".into())).await;
    let session: Value = app.get_json("/api/session").await;
    assert_eq!(session["auth_required"], false);
    app.cleanup().await;
}

#[tokio::test]
async fn behind_trusted_proxies_the_operator_routes_need_a_token() {
    let mut behind = settings();
    behind.trusted_proxies = ingest::TrustedProxies::parse("10.0.0.0/8").unwrap();
    let refused = refusal(behind.clone()).await;
    assert!(refused.contains("SMSGATE_TRUSTED_PROXIES"), "{refused}");
    behind.admin_token = Some("short".into());
    assert!(refusal(behind.clone()).await.contains("at least 16"));
    behind.admin_token = Some(ADMIN_TOKEN.into());
    assert!(App::build(behind, Roles::INGEST).await.is_ok());
}

async fn login(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"token": ADMIN_TOKEN}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn set_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// `name=value` of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn metrics_status(app: &TestApp, cookie: &str) -> StatusCode {
    app.http
        .get(app.url("/metrics"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn sessions_are_random_and_revoked_by_logout_and_by_token_rotation() {
    let app = TestApp::spawn(Roles::INGEST, |s| s.admin_token = Some(ADMIN_TOKEN.into())).await;
    let first = login(&app, &[]).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let first = set_cookie(&first);
    let second = set_cookie(&login(&app, &[]).await);
    // Random per login: not a digest of the token that is the same for everyone.
    assert_ne!(pair(&first), pair(&second));
    assert!(first.contains("HttpOnly") && first.contains("SameSite=Strict"));
    assert!(first.contains("Max-Age=43200"), "{first}");
    assert!(!first.contains("Secure"), "plain HTTP: {first}");
    let (a, b) = (pair(&first), pair(&second));
    assert_eq!(metrics_status(&app, &a).await, StatusCode::OK);
    assert_eq!(metrics_status(&app, &b).await, StatusCode::OK);

    let logout = app
        .http
        .post(app.url("/api/logout"))
        .header("cookie", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(metrics_status(&app, &a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics_status(&app, &b).await, StatusCode::OK);

    // The same deployment (namespace) restarted with a new token: every old session is gone.
    let namespace = app.settings.namespace.clone();
    let rotated = TestApp::spawn(Roles::INGEST, |s| {
        s.namespace = namespace;
        s.admin_token = Some("a-rotated-admin-token-9876543210".into());
    })
    .await;
    assert_eq!(metrics_status(&rotated, &b).await, StatusCode::UNAUTHORIZED);
    rotated.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn sessions_expire() {
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.session_ttl = Duration::from_secs(1);
    })
    .await;
    let cookie = set_cookie(&login(&app, &[]).await);
    assert!(cookie.contains("Max-Age=1"), "{cookie}");
    let cookie = pair(&cookie);
    assert_eq!(metrics_status(&app, &cookie).await, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics_status(&app, &cookie).await != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn session_cookies_are_secure_when_a_trusted_proxy_says_https() {
    let proxied = TestApp::spawn(Roles::INGEST, |s| {
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.trusted_proxies = ingest::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let https = set_cookie(&login(&proxied, &[("x-forwarded-proto", "https")]).await);
    assert!(https.contains("; Secure"), "{https}");
    let http = set_cookie(&login(&proxied, &[("x-forwarded-proto", "http")]).await);
    assert!(!http.contains("Secure"), "{http}");
    proxied.cleanup().await;

    // Anyone else saying so is not believed.
    let direct = TestApp::spawn(Roles::INGEST, |s| s.admin_token = Some(ADMIN_TOKEN.into())).await;
    let claimed = set_cookie(&login(&direct, &[("x-forwarded-proto", "https")]).await);
    assert!(!claimed.contains("Secure"), "{claimed}");
    direct.cleanup().await;
}

#[tokio::test]
async fn failed_logins_and_bad_bearer_tokens_are_throttled_per_client() {
    // The test client connects from 127.0.0.1, trusted as a proxy, so X-Forwarded-For names
    // the client and one test can be several clients.
    let app = TestApp::spawn(Roles::INGEST, |s| {
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.trusted_proxies = ingest::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let attempt = |client: &'static str, token: &'static str| {
        app.http
            .post(app.url("/api/login"))
            .header("x-forwarded-for", client)
            .json(&json!({"token": token}))
            .send()
    };
    let limit = smsgate::cli::Settings::defaults().auth_max_failures;
    for _ in 0..limit {
        let wrong = attempt("198.51.100.1", "wrong-token-guess-000")
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Past the limit even the right token is refused until the window ends.
    let blocked = attempt("198.51.100.1", ADMIN_TOKEN).await.unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        blocked.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");

    let scrape = |client: &'static str, token: &'static str| {
        app.http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", client)
            .bearer_auth(token)
            .send()
    };
    for _ in 0..limit {
        let wrong = scrape("198.51.100.2", "wrong-token-guess-000")
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = scrape("198.51.100.2", ADMIN_TOKEN).await.unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));

    // Other clients are not held back by them.
    let other = attempt("198.51.100.3", ADMIN_TOKEN).await.unwrap();
    assert_eq!(other.status(), StatusCode::NO_CONTENT);
    let other = scrape("198.51.100.3", ADMIN_TOKEN).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_login_bodies_are_problem_json() {
    let app = TestApp::spawn(Roles::INGEST, |s| s.admin_token = Some(ADMIN_TOKEN.into())).await;
    let cases: [(Option<&str>, &str, u16, Option<&str>); 4] = [
        (None, r#"{"token": "x"}"#, 415, None),
        (Some("application/json"), "not json", 400, None),
        (
            Some("application/json"),
            r#"{"token": 5}"#,
            400,
            Some("token"),
        ),
        (Some("application/json"), "{}", 400, Some("token")),
    ];
    for (content_type, body, status, field) in cases {
        let response = app.post_raw("/api/login", content_type, body).await;
        support::expect_problem(response, status, field, body).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    for i in 0..300 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let route = ["/api/sms", "/api/nothing-here", "/healthz"][i % 3];
        let response = app
            .http
            .request(method, app.url(route))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{route}");
    }
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("MADEUP"),
        "a made-up method became a label"
    );
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("smsgate_http_request_duration_seconds_count"))
        .filter(|l| l.contains(r#"method="other""#))
        .count();
    // The recorder is shared by every test of this binary: `other` series are per route and
    // status, a handful, never one per method.
    assert!((1..=10).contains(&series), "{series} `other` series");
    app.cleanup().await;
}

#[tokio::test]
async fn control_characters_are_refused_naming_the_field() {
    let app = TestApp::spawn(Roles::INGEST, |_| {}).await;
    let cases = [
        (
            json!({"to": "+14155550123", "message": "code\u{0}123"}),
            "message",
        ),
        (
            json!({"to": "+14155550123", "message": "\u{1b}[2Jcleared"}),
            "message",
        ),
        (
            json!({"to": "+14155550123", "message": "hi", "from": "Acme\u{b}"}),
            "from",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .http
            .post(app.url("/api/sms"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // Newline and tab are text.
    let ok = app
        .http
        .post(app.url("/api/sms"))
        .json(&json!({"to": "+14155550123", "message": "line\n\tindented"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    assert_eq!(
        app.events().await.len(),
        1,
        "only the accepted one is recorded"
    );
    app.cleanup().await;
}

/// An app whose server limits are short enough for a test to watch them act.
async fn tight(configure: impl FnOnce(&mut smsgate::cli::ServerLimits)) -> TestApp {
    TestApp::spawn(Roles::INGEST, |s| {
        s.server.header_timeout = Duration::from_secs(1);
        s.server.body_timeout = Duration::from_secs(1);
        configure(&mut s.server);
    })
    .await
}

/// Reads until the server closes the connection; what it sent and how long that took.
async fn until_closed(stream: &mut TcpStream, started: Instant) -> (String, Duration) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for 10 s"
    );
    (
        String::from_utf8_lossy(&seen).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_half_sent_header_is_closed_after_the_header_timeout() {
    let app = tight(|_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: smsgate\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, after) = until_closed(&mut stream, started).await;
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_is_closed_after_the_body_timeout() {
    let app = tight(|_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/sms HTTP/1.1\r\nHost: smsgate\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to\": ",
        )
        .await
        .unwrap();
    let (answer, after) = until_closed(&mut stream, started).await;
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(app.events().await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = tight(|_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: smsgate\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, after) = until_closed(&mut stream, started).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    app.cleanup().await;
}

/// Sends a request on a fresh connection and times its answer.
async fn timed_get(app: &TestApp, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: smsgate\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    until_closed(&mut stream, started).await
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let app = tight(|limits| limits.max_connections = 2).await;
    let (answer, quick) = timed_get(&app, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200") && quick < Duration::from_millis(900));
    // Two silent connections hold both places until the header timeout closes them.
    let _first = TcpStream::connect(app.addr).await.unwrap();
    let _second = TcpStream::connect(app.addr).await.unwrap();
    let (answer, waited) = timed_get(&app, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited >= Duration::from_millis(800),
        "answered after {waited:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_wait_for_a_turn() {
    let app = tight(|limits| limits.max_in_flight = 1).await;
    // A request whose body never completes holds the only turn until the body timeout.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /api/sms HTTP/1.1\r\nHost: smsgate\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (answer, waited) = timed_get(&app, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited >= Duration::from_millis(700),
        "answered after {waited:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn every_error_on_every_route_is_problem_json() {
    let roles = Roles {
        archiver: false,
        ..Roles::ALL
    };
    let app = TestApp::spawn(roles, |s| s.admin_token = Some(ADMIN_TOKEN.into())).await;
    let cases = [
        (Method::GET, "/api/sms", 405),
        (Method::DELETE, "/healthz", 405),
        (Method::PUT, "/api/stats", 405),
        (Method::GET, "/api/login", 405),
        (Method::GET, "/api/no-such-route", 404),
        // A path parameter that is not UTF-8: axum's own rejection.
        (Method::GET, "/api/clients/%FF/%2B14155550123", 400),
        (Method::from_bytes(b"MADEUP").unwrap(), "/healthz", 405),
    ];
    for (method, path, status) in cases {
        let name = format!("{method} {path}");
        let response = app
            .http
            .request(method, app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        support::expect_problem(response, status, None, &name).await;
    }
    let huge = format!(r#"{{"token": "{}"}}"#, "x".repeat(100 * 1024));
    let response = app
        .post_raw("/api/login", Some("application/json"), huge)
        .await;
    support::expect_problem(response, 413, None, "a huge login body").await;
    app.cleanup().await;
}

#[tokio::test]
async fn dashboard_responses_carry_the_security_headers() {
    let dist = std::env::temp_dir().join(format!("smsgate-dist-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    std::fs::write(dist.join("assets/app.js"), "export {};").unwrap();
    let dir = dist.clone();
    let app = TestApp::spawn(Roles::INGEST, |s| s.dashboard_dir = dir).await;
    for path in ["/", "/assets/app.js", "/history", "/api/no-such-route"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
    app.cleanup().await;
    let _ = std::fs::remove_dir_all(dist);
}
