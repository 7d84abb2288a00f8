//! `/metrics` against real Redis: every decision is counted once, by outcome, by its policy's
//! rule and window and by block reason, the same way for `POST /api/sms` and the Twilio-
//! compatible API; a replayed answer counts its outcome again and nothing else.
//!
//! Alone in its test binary: the metrics recorder is one per process, so another test's app
//! in the same process would add to these counts.

#![allow(clippy::unwrap_used)]

mod support;

use ingest::TrustedProxies;
use serde_json::json;
use smsgate::Roles;
use support::TestApp;

/// `/metrics` as the operator reads it.
async fn metrics_text(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of one series (labels as the exporter writes them), 0 when absent.
fn series_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn every_decision_is_counted_once_by_outcome_rule_and_window_on_both_apis() {
    let sid = "AC00000000000000000000000000000042";
    let path = std::env::temp_dir().join(format!("smsgate-metrics-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&path, support::SEVERAL_RULES).unwrap();
    let app = TestApp::spawn(Roles::INGEST, move |s| {
        s.policy_file = Some(path);
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        s.admin_token = Some(support::ADMIN_TOKEN.into());
        s.api_clients = sid.to_owned();
        s.api_secret = Some(secrecy::SecretString::from(
            "a secret of some length, for tests",
        ));
    })
    .await;
    let to = "+14155550131";
    let send = |ip: &'static str, to: &'static str, key: Option<&'static str>| {
        let mut request = app
            .http
            .post(app.url("/api/sms"))
            .header("x-forwarded-for", ip)
            .json(&json!({"to": to, "message": "hi"}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(send("198.51.100.1", to, None).await, 202);
    // The shadow rule `trial` (1/1m per ip) would have refused this one.
    assert_eq!(send("198.51.100.1", "+14155550132", None).await, 202);
    assert_eq!(send("198.51.100.2", to, None).await, 202);
    // `number` (2/1m) is full; the repeat under the same key is the first answer replayed.
    assert_eq!(send("198.51.100.3", to, Some("counted-once")).await, 429);
    assert_eq!(send("198.51.100.3", to, Some("counted-once")).await, 429);
    assert_eq!(send("198.51.100.4", "+53 5234 5678", None).await, 403);
    // The Twilio-compatible API's decisions are the same decisions, counted the same way.
    let token = ingest::api_clients::derive_token("a secret of some length, for tests", sid, 1);
    let twilio = app
        .http
        .post(app.url(&format!("/2010-04-01/Accounts/{sid}/Messages.json")))
        .basic_auth(sid, Some(token))
        .form(&[("To", to), ("Body", "hi")])
        .send()
        .await
        .unwrap();
    assert_eq!(twilio.status(), 429);

    let expected = [
        (r#"smsgate_requests_total{outcome="accepted"}"#, 3.0),
        (r#"smsgate_requests_total{outcome="rejected"}"#, 3.0),
        (r#"smsgate_requests_total{outcome="blocked"}"#, 1.0),
        (r#"smsgate_requests_total{outcome="invalid"}"#, 0.0),
        (
            r#"smsgate_violations_total{rule="number",window="number.1m"}"#,
            2.0,
        ),
        (
            r#"smsgate_violations_total{rule="client",window="1m"}"#,
            0.0,
        ),
        (
            r#"smsgate_shadow_violations_total{rule="trial",window="trial.1m"}"#,
            1.0,
        ),
        (
            r#"smsgate_blocked_total{reason="destination-country"}"#,
            1.0,
        ),
        (r#"smsgate_blocked_total{reason="number-type"}"#, 0.0),
    ];
    let text = metrics_text(&app).await;
    for (series, value) in expected {
        assert_eq!(series_value(&text, series), value, "{series}");
    }
    for created_at_zero in [
        r#"smsgate_violations_total{rule="client",window="1m"} 0"#,
        r#"smsgate_shadow_violations_total{rule="trial",window="trial.1m"}"#,
    ] {
        assert!(text.contains(created_at_zero), "{created_at_zero} missing");
    }
    // A series of the other mode exists only once used: no shadow series of an enforced rule.
    assert!(!text.contains(r#"smsgate_shadow_violations_total{rule="number""#));
    app.cleanup().await;
}
