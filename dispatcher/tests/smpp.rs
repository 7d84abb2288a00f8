//! The smpp provider against an SMSC nobody on this project wrote: the npm `smpp` package's
//! server side, run by `tests/smsc/smsc.js` over real TCP, recording every submit_sm as the
//! package decodes it (addresses, data_coding, UDH, text), sending receipts, and on command
//! dropping the connection mid-window or answering ESME_RTHROTTLED. Decisions are the
//! limiter's real script on a real Redis; status is read back from the delivery store.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{deliver_stream, deliverables, eventually, fast_config, layout, redis};
use dispatcher::Dispatcher;
use dispatcher::smpp::receipt::Receipt;
use dispatcher::smpp::record::Recorded;
use dispatcher::smpp::{Concatenation, ReceiptBook, SmppConfig, SmppProvider, SmppUrl};
use fred::clients::Pool;
use limiter::delivery::{DeliveryStatus, DeliveryStore};
use limiter::{Layout, Policy, RateLimiter, SmsRequest};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

const WINDOW: usize = 10;

/// The test SMSC process; killed on drop.
struct Smsc {
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
    stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

impl Smsc {
    async fn start() -> Self {
        // RUST_LOG=dispatcher=debug shows the session's side.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smsc");
        let node_path = std::env::var("SMSGATE_SMSC_NODE_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|_| dir.join("node_modules"));
        assert!(
            node_path.join("smpp").exists(),
            "the npm smpp package is not at {} (scripts/services.sh ensure_smsc installs it)",
            node_path.display()
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("smsc.js"))
            .env("NODE_PATH", &node_path)
            .env("SMSC_SYSTEM_ID", "smsgate")
            .env("SMSC_PASSWORD", "s3cret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node for the test SMSC");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        let mut smsc = Self {
            port: 0,
            events,
            stdin,
            _child: child,
        };
        assert!(
            eventually(Duration::from_secs(30), || {
                let found = smsc.of("listening").first().cloned();
                async move { found.is_some() }
            })
            .await,
            "the test SMSC did not start"
        );
        smsc.port = u16::try_from(smsc.of("listening")[0]["port"].as_u64().unwrap()).unwrap();
        smsc
    }

    fn url(&self) -> SmppUrl {
        SmppUrl::parse(&format!(
            "smpp://smsgate:s3cret@127.0.0.1:{}?system_type=smsgate",
            self.port
        ))
        .unwrap()
    }

    /// Every event of `kind` so far.
    fn of(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    async fn command(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let cmd = command["cmd"].clone();
        let events = self.events.clone();
        assert!(
            eventually(Duration::from_secs(10), || {
                let ok = events
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| e["event"] == "ok" && e["cmd"] == cmd)
                    .count();
                async move { ok > 0 }
            })
            .await,
            "the test SMSC did not take {command}"
        );
    }
}

fn config(smsc: &Smsc) -> SmppConfig {
    let mut config = SmppConfig::new(smsc.url());
    config.window = WINDOW;
    config.from = "+15005550006".into();
    config.response_timeout = Duration::from_secs(5);
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_secs(2);
    config
}

struct Setup {
    pool: Pool,
    layout: Layout,
    dispatcher: Dispatcher,
    session: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

async fn setup(smsc: &Smsc) -> Setup {
    setup_with(config(smsc)).await
}

async fn setup_with(config: SmppConfig) -> Setup {
    let pool = redis().await;
    let layout = layout();
    let shutdown = CancellationToken::new();
    let book = ReceiptBook::new(pool.clone(), DeliveryStore::new(layout.clone()));
    let (provider, session) = SmppProvider::start(config, book, shutdown.clone());
    let mut dispatcher_config = fast_config();
    dispatcher_config.tps = 100_000;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        layout.clone(),
        provider,
        None,
        dispatcher_config,
    );
    Setup {
        pool,
        layout,
        dispatcher,
        session,
        shutdown,
    }
}

/// Decides one request per (to, body) with the limiter's real script, each from its own
/// client, with the segment count the API computes; all are accepted.
async fn accept(pool: &Pool, layout: &Layout, messages: &[(String, String)]) {
    let limiter = RateLimiter::new(Policy::parse("1/1d").unwrap(), layout.clone());
    for (i, (to, body)) in messages.iter().enumerate() {
        let segments = ingest::message::Message::parse(body.clone())
            .unwrap()
            .segments();
        let request = SmsRequest {
            ip: format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250)
                .parse()
                .unwrap(),
            to,
            from: None,
            message: body,
            segments,
        };
        let decision = limiter
            .decide_with(pool.next(), &request, &limiter::Context::default())
            .await
            .unwrap();
        assert_eq!(decision.outcome, limiter::Outcome::Accepted);
    }
}

/// How many accepted messages have reached `status`.
async fn count_status(setup: &Setup, status: DeliveryStatus) -> usize {
    let mut n = 0;
    for partition in 0..setup.layout.partitions() {
        for d in deliverables(&setup.pool, &setup.layout, partition).await {
            let state = setup
                .dispatcher
                .store()
                .load(setup.pool.next(), partition, &d.id)
                .await
                .unwrap()
                .unwrap();
            if state.status == status {
                n += 1;
            }
        }
    }
    n
}

fn to(i: usize) -> String {
    format!("+1415{:07}", 5_550_000 + i)
}

/// A body of exactly `chars` characters: a unique head, then `fill` repeated.
fn body(head: &str, fill: &str, chars: usize) -> String {
    let mut text: String = head.to_owned();
    while text.chars().count() < chars {
        text.push_str(fill);
    }
    text.chars().take(chars).collect()
}

#[tokio::test]
async fn a_thousand_accepted_messages_reach_the_smsc_once_each_encoded_and_split_and_every_receipt_is_delivered()
 {
    let smsc = Smsc::start().await;
    let setup = setup(&smsc).await;
    let messages: Vec<(String, String)> = (0..1_000)
        .map(|i| {
            let text = match i % 10 {
                // 200 GSM characters, one from the extension table: 201 septets, 2 parts.
                0 => body(&format!("long {i} €"), " Grüße, ¿qué tal? @home", 200),
                // 100 characters with emoji (two UTF-16 units each): 110 units, UCS-2 in 2 parts.
                1 => body(&format!("emoji {i} "), "ok 😀 fine ", 100),
                _ => format!("code {i}"),
            };
            (to(i), text)
        })
        .collect();
    accept(&setup.pool, &setup.layout, &messages).await;
    let expected: HashMap<String, (String, u32)> = messages
        .iter()
        .map(|(to, body)| {
            let segments = ingest::message::segments(body);
            (
                to.trim_start_matches('+').to_owned(),
                (body.clone(), segments),
            )
        })
        .collect();
    let parts: usize = expected.values().map(|(_, s)| *s as usize).sum();
    assert_eq!(
        parts,
        800 + 200 * 2,
        "the API's count: 100 + 100 two-part messages"
    );

    let started = Instant::now();
    deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 200).await;
    let sent_in = started.elapsed();
    assert!(
        eventually(Duration::from_secs(120), || {
            let setup = &setup;
            async move { count_status(setup, DeliveryStatus::Delivered).await == 1_000 }
        })
        .await,
        "every receipt should make its message delivered: {} of 1000 are, {} receipts acked",
        count_status(&setup, DeliveryStatus::Delivered).await,
        smsc.of("receipt_acked").len()
    );
    println!(
        "1000 messages ({parts} submit_sm) handed over in {:.2}s, all delivered after {:.2}s",
        sent_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let submits = smsc.of("submit_sm");
    assert_eq!(
        submits.len(),
        parts,
        "one submit_sm per part, none repeated"
    );
    assert_eq!(smsc.of("submit_sm_resp").len(), parts);
    let mut by_destination: HashMap<String, Vec<&Value>> = HashMap::new();
    for s in &submits {
        by_destination
            .entry(s["destination_addr"].as_str().unwrap().to_owned())
            .or_default()
            .push(s);
    }
    assert_eq!(by_destination.len(), 1_000);
    for (destination, got) in &by_destination {
        let (body, segments) = &expected[destination];
        assert_eq!(got.len(), *segments as usize, "{destination}: parts");
        let gsm = !body.chars().any(|c| c == '😀');
        for s in got {
            assert_eq!(s["dest_addr_ton"], 1, "international");
            assert_eq!(s["dest_addr_npi"], 1, "ISDN");
            assert_eq!(s["source_addr"], "15005550006");
            assert_eq!(s["registered_delivery"], 1, "a receipt is requested");
            assert_eq!(s["data_coding"], if gsm { 0 } else { 8 }, "{destination}");
        }
        let text: String = if *segments == 1 {
            assert_eq!(got[0]["esm_class"], 0);
            assert_eq!(got[0]["udh"], serde_json::json!([]));
            got[0]["text"].as_str().unwrap().to_owned()
        } else {
            // 05 00 03 <ref> <total> <seq>: the package hands over the element without the
            // UDH length octet.
            let mut ordered: Vec<(u8, &str)> = got
                .iter()
                .map(|s| {
                    assert_eq!(s["esm_class"].as_u64().unwrap() & 0x40, 0x40, "UDHI");
                    let udh = s["udh"][0].as_str().unwrap();
                    let bytes = hex_bytes(udh);
                    assert_eq!(bytes.len(), 5, "{udh}");
                    assert_eq!(bytes[..2], [0x00, 0x03], "concatenation, 8-bit reference");
                    assert_eq!(bytes[3], 2, "2 parts");
                    (bytes[4], s["text"].as_str().unwrap())
                })
                .collect();
            let references: std::collections::HashSet<&str> = got
                .iter()
                .map(|s| &s["udh"][0].as_str().unwrap()[4..6])
                .collect();
            assert_eq!(references.len(), 1, "one reference for both parts");
            ordered.sort();
            assert_eq!(
                ordered.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
                [1, 2]
            );
            ordered.iter().map(|(_, t)| *t).collect()
        };
        assert_eq!(&text, body, "{destination}: the SMSC decodes what was sent");
    }
    assert_eq!(smsc.of("bind").len(), 1);
    assert_eq!(smsc.of("bind")[0]["system_type"], "smsgate");

    setup.shutdown.cancel();
    setup.session.await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let unbound = smsc.of("unbind").len();
            async move { unbound == 1 }
        })
        .await,
        "a clean unbind on shutdown"
    );
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn a_connection_dropped_mid_window_and_ten_seconds_of_throttling_lose_nothing_and_repeat_at_most_the_window()
 {
    let mut smsc = Smsc::start().await;
    let setup = setup(&smsc).await;
    let n = 400;
    let messages: Vec<(String, String)> = (0..n).map(|i| (to(i), format!("code {i}"))).collect();
    accept(&setup.pool, &setup.layout, &messages).await;
    // Answers a little late, so the window is full when the SMSC drops the connection at its
    // 150th submit_sm.
    smsc.command(serde_json::json!({"cmd": "resp_delay", "ms": 20}))
        .await;
    smsc.command(serde_json::json!({"cmd": "drop_after", "n": 150}))
        .await;
    let retries = CancellationToken::new();
    let schedule = {
        let retries = retries.clone();
        let dispatcher = &setup.dispatcher;
        async move {
            dispatcher
                .run_schedule_until_stopped(Duration::from_millis(100), retries)
                .await
        }
    };
    let work = async {
        let first = deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 100);
        let throttle = async {
            assert!(
                eventually(Duration::from_secs(60), || {
                    let dropped = smsc.of("drop").len();
                    async move { dropped == 1 }
                })
                .await,
                "the SMSC should drop the connection"
            );
            smsc.command(serde_json::json!({"cmd": "throttle", "secs": 10}))
                .await;
        };
        tokio::join!(first, throttle);
        let delivered = eventually(Duration::from_secs(120), || {
            let setup = &setup;
            async move { count_status(setup, DeliveryStatus::Delivered).await == n }
        })
        .await;
        retries.cancel();
        delivered
    };
    let (delivered, ()) = tokio::join!(work, schedule);
    assert!(
        delivered,
        "everything accepted is delivered in the end: {} of {n}",
        count_status(&setup, DeliveryStatus::Delivered).await
    );

    let drop = &smsc.of("drop")[0];
    let unanswered = drop["unanswered"].as_u64().unwrap();
    assert!(
        unanswered > 1,
        "the drop should leave several submit_sm unanswered (mid-window), left {unanswered}"
    );
    assert!(
        unanswered as usize <= WINDOW,
        "never more than the window outstanding"
    );
    let throttled = smsc.of("throttled").len();
    assert!(throttled > 0, "the SMSC should have throttled some submits");
    assert!(smsc.of("bind").len() >= 2, "the session reconnects");

    let submits = smsc.of("submit_sm");
    let mut received: HashMap<String, usize> = HashMap::new();
    for s in &submits {
        *received
            .entry(s["destination_addr"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(received.len(), n, "every message reached the SMSC");
    let duplicates: usize = received.values().map(|c| c - 1).sum();
    println!(
        "drop left {unanswered} unanswered; {throttled} throttled answers; {} binds; {duplicates} messages the SMSC received twice (bound: the window, {WINDOW})",
        smsc.of("bind").len()
    );
    assert!(
        duplicates <= WINDOW,
        "{duplicates} messages reached the SMSC twice; the bound is the window ({WINDOW})"
    );
    assert!(
        duplicates as u64 <= unanswered,
        "only the parts left unanswered by the drop may repeat"
    );
    setup.shutdown.cancel();
    setup.session.await.unwrap();
}

#[tokio::test]
async fn throughput_with_a_window_of_ten_against_the_local_smsc() {
    let smsc = Smsc::start().await;
    let setup = setup(&smsc).await;
    let n = 2_000;
    let messages: Vec<(String, String)> = (0..n).map(|i| (to(i), format!("code {i}"))).collect();
    accept(&setup.pool, &setup.layout, &messages).await;
    assert!(
        eventually(Duration::from_secs(30), || {
            let bound = smsc.of("bind").len();
            async move { bound == 1 }
        })
        .await
    );
    let started = Instant::now();
    deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 500).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        count_status(&setup, DeliveryStatus::Sent).await
            + count_status(&setup, DeliveryStatus::Delivered).await,
        n
    );
    assert_eq!(smsc.of("submit_sm").len(), n, "each message once");
    println!(
        "SMPP throughput, window {WINDOW}: {n} messages sent (submit_sm_resp and status recorded in Redis) in {elapsed:.2}s = {:.0} msg/s",
        n as f64 / elapsed
    );
    setup.shutdown.cancel();
    setup.session.await.unwrap();
}

#[tokio::test]
async fn sar_tlvs_can_mark_the_parts_and_receipts_in_text_form_alone_still_deliver() {
    let mut smsc = Smsc::start().await;
    smsc.command(serde_json::json!({"cmd": "receipts", "form": "text"}))
        .await;
    let mut config = config(&smsc);
    config.concatenation = Concatenation::Sar;
    let setup = setup_with(config).await;
    let messages: Vec<(String, String)> = (0..20)
        .map(|i| (to(i), body(&format!("long {i} "), "abcdefghij", 200)))
        .collect();
    accept(&setup.pool, &setup.layout, &messages).await;
    deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 20).await;
    assert!(
        eventually(Duration::from_secs(60), || {
            let setup = &setup;
            async move { count_status(setup, DeliveryStatus::Delivered).await == 20 }
        })
        .await,
        "text-form receipts of both parts make each message delivered"
    );
    let submits = smsc.of("submit_sm");
    assert_eq!(submits.len(), 40);
    let mut by_destination: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in &submits {
        assert_eq!(s["esm_class"], 0, "no UDH indicator with sar_* TLVs");
        assert_eq!(s["udh"], serde_json::json!([]));
        assert_eq!(s["sar_total_segments"], 2);
        by_destination
            .entry(s["destination_addr"].as_str().unwrap())
            .or_default()
            .push(s);
    }
    for (destination, parts) in by_destination {
        let (_, body) = messages
            .iter()
            .find(|(to, _)| to.trim_start_matches('+') == destination)
            .unwrap();
        let mut parts: Vec<(u64, &str)> = parts
            .iter()
            .map(|s| {
                (
                    s["sar_segment_seqnum"].as_u64().unwrap(),
                    s["text"].as_str().unwrap(),
                )
            })
            .collect();
        parts.sort();
        let text: String = parts.iter().map(|(_, t)| *t).collect();
        assert_eq!(&text, body);
    }
    setup.shutdown.cancel();
    setup.session.await.unwrap();
}

#[tokio::test]
async fn a_refusal_other_than_throttling_fails_the_message_at_once() {
    let mut smsc = Smsc::start().await;
    let setup = setup(&smsc).await;
    accept(&setup.pool, &setup.layout, &[(to(0), "to nowhere".into())]).await;
    // ESME_RINVDSTADR: the SMSC will not take this destination, now or later.
    smsc.command(serde_json::json!({"cmd": "refuse", "status": 0x0B, "n": 1}))
        .await;
    deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 1).await;
    let id = deliverables(&setup.pool, &setup.layout, 0).await[0].id;
    let state = setup
        .dispatcher
        .store()
        .load(setup.pool.next(), 0, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Failed);
    assert_eq!(state.attempts, 1);
    let detail = state.history.last().unwrap().detail.clone().unwrap();
    assert!(detail.contains("0x0000000B"), "{detail}");
    assert_eq!(smsc.of("refused").len(), 1);
    assert!(
        smsc.of("submit_sm").is_empty(),
        "never taken, never retried"
    );
    setup.shutdown.cancel();
    setup.session.await.unwrap();
}

#[tokio::test]
async fn a_long_message_is_delivered_when_every_part_is_and_undelivered_when_one_is_not() {
    let mut smsc = Smsc::start().await;
    smsc.command(serde_json::json!({"cmd": "receipts", "form": "none"}))
        .await;
    let setup = setup(&smsc).await;
    let long = |i: usize| (to(i), body(&format!("long {i} "), "abcdefghij", 200));
    accept(&setup.pool, &setup.layout, &[long(0), long(1)]).await;
    deliver_stream(&setup.dispatcher, &setup.pool, &setup.layout, 2).await;
    assert_eq!(count_status(&setup, DeliveryStatus::Sent).await, 2);
    let ids_of = |destination: &str| -> Vec<String> {
        smsc.of("submit_sm")
            .iter()
            .filter(|s| s["destination_addr"] == destination)
            .map(|s| s["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (first, second) = (ids_of("14155550000"), ids_of("14155550001"));
    assert_eq!((first.len(), second.len()), (2, 2));
    let book = ReceiptBook::new(setup.pool.clone(), DeliveryStore::new(setup.layout.clone()));
    let receipt = |id: &str, state: &str| Receipt {
        message_id: id.to_owned(),
        state: state.to_owned(),
        error: Some("000".into()),
    };
    assert_eq!(
        book.record(&receipt(&first[0], "DELIVRD")).await.unwrap(),
        Recorded::Ignored,
        "one part of two delivered is not the message delivered"
    );
    assert_eq!(count_status(&setup, DeliveryStatus::Delivered).await, 0);
    // The same receipt offered again counts once.
    book.record(&receipt(&first[0], "DELIVRD")).await.unwrap();
    assert_eq!(count_status(&setup, DeliveryStatus::Delivered).await, 0);
    assert_eq!(
        book.record(&receipt(&first[1], "DELIVRD")).await.unwrap(),
        Recorded::Changed
    );
    assert_eq!(count_status(&setup, DeliveryStatus::Delivered).await, 1);
    assert_eq!(
        book.record(&receipt(&second[1], "UNDELIV")).await.unwrap(),
        Recorded::Changed,
        "one part undelivered makes the message undelivered"
    );
    assert_eq!(count_status(&setup, DeliveryStatus::Undelivered).await, 1);
    assert_eq!(
        book.record(&receipt(&second[0], "DELIVRD")).await.unwrap(),
        Recorded::Ignored,
        "a final status does not change again"
    );
    assert_eq!(
        book.record(&receipt("no-such-id", "DELIVRD"))
            .await
            .unwrap(),
        Recorded::NotYet,
        "a receipt for a part not indexed (yet) waits"
    );
    setup.shutdown.cancel();
    setup.session.await.unwrap();
}
