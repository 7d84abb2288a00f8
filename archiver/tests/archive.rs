//! The archiver against a real Redis and a real Postgres: every event lands exactly once with
//! every field intact, crashes and concurrent archivers duplicate nothing, bad entries go to the
//! dead-letter stream, and trimming never drops what a group still needs.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use archiver::Row;
use archiver::{Outcome, insert_rows};
use chrono::{DateTime, Utc};
use common::Harness;
use eventlog::From;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::{Event, codec};
use sqlx::Row as _;
use tokio_util::sync::CancellationToken;

/// Every row of `sms_events`, by partition and stream entry id.
async fn archived(h: &Harness) -> HashMap<(u16, String), sqlx::postgres::PgRow> {
    sqlx::query(
        r#"SELECT id, stream_id, partition, at, at_us, ip, "to", "from", message, segments,
                  outcome, violated, retry_after, policy FROM sms_events"#,
    )
    .fetch_all(&h.pg)
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        let partition = u16::try_from(row.get::<i16, _>("partition")).unwrap();
        ((partition, row.get::<String, _>("stream_id")), row)
    })
    .collect()
}

fn assert_row_is_event(row: &sqlx::postgres::PgRow, partition: u16, event: &Event) {
    assert_eq!(row.get::<uuid::Uuid, _>("id"), event.id);
    assert_eq!(row.get::<i16, _>("partition"), partition as i16);
    assert_eq!(row.get::<i64, _>("at_us"), event.at_us);
    assert_eq!(
        row.get::<DateTime<Utc>, _>("at").timestamp_micros(),
        event.at_us
    );
    assert_eq!(row.get::<IpAddr, _>("ip"), event.ip);
    assert_eq!(row.get::<String, _>("to"), event.to);
    assert_eq!(row.get::<Option<String>, _>("from"), event.from);
    assert_eq!(row.get::<String, _>("message"), event.message);
    assert_eq!(row.get::<i32, _>("segments"), event.segments as i32);
    assert_eq!(row.get::<String, _>("outcome"), event.outcome.as_str());
    assert_eq!(row.get::<Vec<String>, _>("violated"), event.violated);
    assert_eq!(row.get::<i64, _>("retry_after"), event.retry_after as i64);
    assert_eq!(row.get::<String, _>("policy"), event.policy);
}

#[tokio::test]
async fn ten_thousand_events_become_exactly_ten_thousand_rows_equal_to_the_stream() {
    let h = Harness::new(4).await;
    h.decide(10_000).await;
    let on_stream = h.stream_events().await;
    assert_eq!(on_stream.len(), 10_000);

    let archiver = h.archiver(h.config("a1"));
    let report = archiver.drain().await.unwrap();
    assert_eq!(report.entries, 10_000);
    assert_eq!(report.inserted, 10_000);
    assert_eq!(report.dead_lettered, 0);

    let rows = archived(&h).await;
    assert_eq!(rows.len(), 10_000);
    assert_eq!(h.rows().await, 10_000);
    let mut outcomes = HashSet::new();
    for (key, event) in &on_stream {
        let row = rows.get(key).expect("every stream entry is archived");
        assert_row_is_event(row, key.0, event);
        outcomes.insert((event.outcome, event.from.is_some(), event.ip.is_ipv6()));
    }
    assert_eq!(outcomes.len(), 8, "the data covers every kind of event");
    // Nothing left: a second drain is idle and changes nothing.
    assert_eq!(archiver.try_process_batch().await.unwrap(), Outcome::Idle);
    assert_eq!(h.rows().await, 10_000);
}

#[tokio::test]
async fn a_crash_after_insert_before_ack_is_redelivered_without_duplicates() {
    let h = Harness::new(1).await;
    h.decide(2_500).await;
    // A consumer reads 1,000 entries, commits 600 of them to Postgres, and dies before XACK.
    let stream = h.layout.stream(0);
    let read = h.read_as(0, "dead-one", From::New, 1_000).await;
    assert_eq!(read.len(), 1_000);
    let rows: Vec<_> = read
        .iter()
        .take(600)
        .map(|e| {
            let event = codec::decode(e.field(codec::EVENT_FIELD).unwrap()).unwrap();
            Row::new(0, &e.id.to_string(), &event).unwrap()
        })
        .collect();
    assert_eq!(
        insert_rows(&h.pg, &archiver::Partitions::new(), &rows)
            .await
            .unwrap(),
        600
    );

    // Another archiver claims the abandoned entries and archives everything else.
    let archiver = h.archiver(archiver::ArchiverConfig {
        claim_idle: Duration::ZERO,
        ..h.config("survivor")
    });
    let report = archiver.drain().await.unwrap();
    assert_eq!(report.entries, 2_500, "every entry is settled once");
    assert_eq!(
        report.inserted, 1_900,
        "the 600 committed rows are not inserted again"
    );
    assert_eq!(h.rows().await, 2_500);
    let pending: Value = h
        .client()
        .xpending(&stream, archiver::GROUP, ())
        .await
        .unwrap();
    assert_eq!(
        pending.into_array()[0].as_u64(),
        Some(0),
        "nothing left pending"
    );
}

#[tokio::test]
async fn own_pending_entries_are_archived_first_after_a_restart() {
    let h = Harness::new(2).await;
    h.decide(1_200).await;
    // The same consumer name read entries in a previous life and never acked them; they are
    // not idle long enough to be claimed, so only re-reading its own pending finds them.
    for p in 0..2 {
        h.read_as(p, "node-1", From::New, 10_000).await;
    }
    let archiver = h.archiver(h.config("node-1"));
    let report = archiver.drain().await.unwrap();
    assert_eq!(report.inserted, 1_200);
    assert_eq!(h.rows().await, 1_200);
}

#[tokio::test]
async fn two_archivers_at_once_share_the_work_without_duplicates() {
    let h = Harness::new(3).await;
    h.decide(6_000).await;
    let config = |name: &str| archiver::ArchiverConfig {
        batch_size: 500,
        ..h.config(name)
    };
    let (a, b) = (h.archiver(config("a")), h.archiver(config("b")));
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.inserted + rb.inserted, 6_000);
    assert_eq!(
        ra.entries + rb.entries,
        6_000,
        "no entry was delivered to both"
    );
    assert!(
        ra.batches > 0 && rb.batches > 0,
        "both did work: {ra:?} {rb:?}"
    );
    assert_eq!(h.rows().await, 6_000);
}

#[tokio::test]
async fn corrupt_entries_go_to_the_dead_letter_stream_and_the_rest_flows_on() {
    let h = Harness::new(1).await;
    let stream = h.layout.stream(0);
    h.decide(100).await;
    let garbage = b"\xc1 not messagepack".to_vec();
    let _: String = h
        .client()
        .xadd(
            &stream,
            false,
            None,
            "*",
            vec![("e", Value::Bytes(garbage.clone().into()))],
        )
        .await
        .unwrap();
    let _: String = h
        .client()
        .xadd(&stream, false, None, "*", vec![("other", "field")])
        .await
        .unwrap();
    let mut nul = h.stream_events().await.into_values().next().unwrap();
    nul.id = uuid::Uuid::now_v7();
    nul.message = "nul \0 inside".into();
    let _: String = h
        .client()
        .xadd(
            &stream,
            false,
            None,
            "*",
            vec![("e", Value::Bytes(codec::encode(&nul).into()))],
        )
        .await
        .unwrap();
    h.decide(100).await;

    let archiver = h.archiver(archiver::ArchiverConfig {
        batch_size: 50,
        ..h.config("a")
    });
    let report = archiver.drain().await.unwrap();
    // The event with a NUL is an event: archived with what Postgres text can hold.
    assert_eq!(report.inserted, 201);
    assert_eq!(report.dead_lettered, 2);
    assert_eq!(h.rows().await, 201);
    let stored: String = sqlx::query_scalar("SELECT message FROM sms_events WHERE id = $1")
        .bind(nul.id)
        .fetch_one(&h.pg)
        .await
        .unwrap();
    assert_eq!(stored, "nul \u{FFFD} inside");

    let dead = h.dead_letters(0).await;
    assert_eq!(dead.len(), 2);
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8_lossy(&d["reason"]).into_owned())
        .collect();
    assert!(reasons[0].contains("undecodable"), "{reasons:?}");
    assert!(reasons[1].contains("no `e` field"), "{reasons:?}");
    assert_eq!(dead[0]["payload"], garbage, "the raw payload is kept");
    assert!(dead.iter().all(|d| d["group"] == b"archiver"));
    assert!(dead.iter().all(|d| d["stream_id"].contains(&b'-')));
    assert_eq!(
        h.xlen(0).await,
        0,
        "dead letters are acked: nothing holds the stream"
    );
}

#[tokio::test]
async fn a_row_postgres_refuses_is_dead_lettered_with_its_original_payload() {
    let h = Harness::new(1).await;
    let stream = h.layout.stream(0);
    h.decide(20).await;
    // A constraint of the test's own makes Postgres refuse one row for real.
    sqlx::query(
        "ALTER TABLE sms_events ADD CONSTRAINT refused_by_test CHECK (message <> 'refuse me')",
    )
    .execute(&h.pg)
    .await
    .unwrap();
    let mut refused = h.stream_events().await.into_values().next().unwrap();
    refused.id = uuid::Uuid::now_v7();
    refused.message = "refuse me".into();
    let payload = codec::encode(&refused);
    let _: String = h
        .client()
        .xadd(
            &stream,
            false,
            None,
            "*",
            vec![("e", Value::Bytes(payload.clone().into()))],
        )
        .await
        .unwrap();
    h.decide(20).await;

    let report = h.archiver(h.config("a")).drain().await.unwrap();
    assert_eq!((report.inserted, report.dead_lettered), (40, 1));
    let dead = h.dead_letters(0).await;
    assert_eq!(dead.len(), 1);
    assert!(
        String::from_utf8_lossy(&dead[0]["reason"]).contains("refused by postgres"),
        "{:?}",
        String::from_utf8_lossy(&dead[0]["reason"])
    );
    assert_eq!(dead[0]["payload"], payload, "the original payload is kept");
    assert_eq!(codec::decode(&dead[0]["payload"]).unwrap(), refused);
}

#[tokio::test]
async fn an_entry_delivered_too_often_is_dead_lettered() {
    let h = Harness::new(1).await;
    h.decide(10).await;
    // Three lives of consumer "crashy" each read the entries and died before acking.
    h.read_as(0, "crashy", From::New, 100).await;
    for _ in 0..2 {
        h.read_as(0, "crashy", From::PENDING, 100).await;
    }
    let archiver = h.archiver(archiver::ArchiverConfig {
        max_deliveries: 3,
        ..h.config("crashy")
    });
    // The fourth delivery exceeds the limit.
    let report = archiver.drain().await.unwrap();
    assert_eq!(report.dead_lettered, 10, "{report:?}");
    assert_eq!(h.rows().await, 0);
    let dead = h.dead_letters(0).await;
    assert!(String::from_utf8_lossy(&dead[0]["reason"]).contains("delivered 4 times"));
}

#[tokio::test]
async fn the_stream_is_trimmed_after_archiving_but_never_below_another_groups_need() {
    let h = Harness::new(1).await;
    let stream = h.layout.stream(0);
    h.decide(1_000).await;
    // The projector has read 300 entries and acked the first 200: it still needs entry 201.
    let _: Value = h
        .client()
        .xgroup_create(&stream, "projector", "0", true)
        .await
        .unwrap();
    let projector_read: Vec<eventlog::RawEntry> = eventlog::parse_xread(
        h.client()
            .xreadgroup(
                "projector",
                "p1",
                Some(300),
                None,
                false,
                stream.as_str(),
                ">",
            )
            .await
            .unwrap(),
    )
    .unwrap()
    .into_iter()
    .flat_map(|(_, entries)| entries)
    .collect();
    let acked: Vec<String> = projector_read[..200]
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    let _: u64 = h.client().xack(&stream, "projector", acked).await.unwrap();

    let archiver = h.archiver(h.config("a"));
    archiver.drain().await.unwrap();
    assert_eq!(h.rows().await, 1_000);
    assert_eq!(
        h.xlen(0).await,
        800,
        "trimmed exactly below the projector's oldest pending"
    );
    let first: Vec<(String, HashMap<String, Vec<u8>>)> = h
        .client()
        .xrange_values(&stream, "-", "+", Some(1))
        .await
        .unwrap();
    assert_eq!(first[0].0, projector_read[200].id.to_string());

    // The projector catches up; the next archive trims everything both groups have done.
    let rest: Vec<String> = projector_read[200..]
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    let _: u64 = h.client().xack(&stream, "projector", rest).await.unwrap();
    let _: Value = h
        .client()
        .xgroup_setid(&stream, "projector", "$")
        .await
        .unwrap();
    h.decide(10).await;
    archiver.drain().await.unwrap();
    assert_eq!(
        h.xlen(0).await,
        10,
        "the projector has not read the 10 new entries yet"
    );

    // A group that has read nothing keeps everything.
    let _: Value = h
        .client()
        .xgroup_create(&stream, "replayer", "0", false)
        .await
        .unwrap();
    h.decide(5).await;
    archiver.drain().await.unwrap();
    assert_eq!(h.xlen(0).await, 15);
    assert_eq!(h.rows().await, 1_015);
}

#[tokio::test]
async fn while_postgres_is_down_nothing_is_acked_or_trimmed_and_all_arrives_after() {
    let server = common::PgServer::start();
    let h = Harness::on(&server.url(), 1).await;
    h.decide(500).await;
    let archiver = h.archiver(h.config("a"));
    archiver.drain().await.unwrap();
    assert_eq!(h.rows().await, 500);
    assert_eq!(h.xlen(0).await, 0);

    server.stop();
    h.decide(700).await;
    for _ in 0..3 {
        let failed = archiver.try_process_batch().await;
        assert!(
            matches!(failed, Err(ref e) if e.is_transient()),
            "{failed:?}"
        );
    }
    assert_eq!(h.xlen(0).await, 700, "nothing trimmed during the outage");
    assert_eq!(
        archiver.measure().await.unwrap(),
        700,
        "the lag counts every unarchived entry"
    );
    h.decide(300).await;
    assert_eq!(archiver.measure().await.unwrap(), 1_000, "and grows");

    server.resume();
    // The pool reconnects by itself; the batch held in hand goes first.
    let mut report = None;
    for _ in 0..50 {
        match archiver.drain().await {
            Ok(r) => {
                report = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let report = report.expect("archiving resumes once postgres is back");
    assert_eq!(report.inserted, 1_000);
    assert_eq!(h.rows().await, 1_500);
    assert_eq!(archiver.measure().await.unwrap(), 0);
    assert_eq!(h.xlen(0).await, 0);
    drop(h);
}

#[tokio::test]
async fn a_backlog_over_the_threshold_is_archived_before_the_interval_and_shutdown_is_clean() {
    let h = Harness::new(1).await;
    let archiver = h.archiver(archiver::ArchiverConfig {
        interval: Duration::from_secs(3_600),
        backlog_threshold: 300,
        backlog_check: Duration::from_millis(50),
        ..h.config("a")
    });
    // The run loop's decision, one step at a time: below the threshold the interval rules.
    // (The loop drains once on start, which creates the group whose lag is measured.)
    archiver.drain().await.unwrap();
    h.decide(100).await;
    assert!(!archiver.backlog_due().await.unwrap(), "100 < 300");
    h.decide(400).await;
    assert!(archiver.backlog_due().await.unwrap(), "500 >= 300");

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(archiver.run_until_stopped(shutdown.clone()));
    let rows_reach = |n: i64| {
        let h = &h;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while h.rows().await != n {
                assert!(std::time::Instant::now() < deadline, "{n} rows in time");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The first drain happens on start, the next one as soon as the backlog passes the
    // threshold: an hour before the interval.
    rows_reach(500).await;
    h.decide(400).await;
    rows_reach(900).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
}
