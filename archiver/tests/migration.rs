//! Migration 0015 against a real Postgres: an archive of 100,000 decisions (and their delivery
//! statuses) in today's unpartitioned tables moves into the partitioned ones with every row,
//! every column of it, intact; the time it took is printed (`--nocapture`).

#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;
use std::time::Instant;

use archiver::MIGRATOR;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool};

/// The migration that partitions the archive.
const PARTITIONING: i64 = 15;

/// A digest of every row of `table`, by id, over every column the old table had: equal
/// before and after the move only if no row was lost, added or changed.
async fn digest(pg: &PgPool, table: &str, columns: &str) -> (i64, String) {
    let sql = format!(
        "SELECT count(*), md5(string_agg(row_text, '\n' ORDER BY id)) FROM \
         (SELECT id, ROW({columns})::text AS row_text FROM {table}) AS t"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pg)
        .await
        .unwrap()
}

const EVENT_COLUMNS: &str = r#"id, stream_id, partition, at, at_us, ip, "to", "from", message,
    segments, outcome, violated, retry_after, policy, archived_at, shadow_violated, reason,
    country, client"#;
const STATUS_COLUMNS: &str = r#"id, message_id, stream_id, partition, at, "to", status,
    provider, provider_id, attempt, detail"#;

#[tokio::test]
async fn a_filled_archive_of_100_000_rows_moves_into_partitions_without_losing_one() {
    let base = testkit::database_server_url();
    let name = format!("smsgate_test_{}", uuid::Uuid::now_v7().simple());
    let options = PgConnectOptions::from_str(&testkit::url_with_database(&base, &name)).unwrap();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap();
    let pg = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    MIGRATOR.run_to(PARTITIONING - 1, &pg).await.unwrap();

    // 100,000 decisions over 120 days, every outcome, some with sender, reason and country,
    // and a delivery status for each accepted one.
    pg.execute(
        r#"INSERT INTO sms_events
            (id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
             violated, retry_after, policy, shadow_violated, reason, country, client)
        SELECT gen_random_uuid(), (1700000000000 + i) || '-' || (i % 3), (i % 4)::int2,
               t, (extract(epoch FROM t) * 1000000)::bigint,
               ('198.51.100.' || (i % 250))::inet, '+1415555' || lpad((i % 9973)::text, 4, '0'),
               CASE WHEN i % 2 = 0 THEN 'Acme' END, 'Your code is ' || lpad(i::text, 6, '0'),
               1 + i % 3,
               CASE WHEN i % 10 = 9 THEN 'blocked' WHEN i % 3 = 0 THEN 'accepted' ELSE 'rejected' END,
               CASE WHEN i % 3 = 0 OR i % 10 = 9 THEN '{}'::text[] ELSE '{1m}'::text[] END,
               CASE WHEN i % 3 = 0 OR i % 10 = 9 THEN 0 ELSE 1 + i % 60 END,
               '3/1m,10/1d', '{}'::text[],
               CASE WHEN i % 10 = 9 THEN 'number-type' END,
               CASE WHEN i % 5 = 0 THEN 'US' END, NULL
        FROM (SELECT i, timestamptz '2026-08-01 00:00:00+00' + i * interval '103 seconds' AS t
              FROM generate_series(1, 100000) AS i) AS s"#,
    )
    .await
    .unwrap();
    pg.execute(
        r#"INSERT INTO sms_status
            (id, message_id, stream_id, partition, at, "to", status, provider, provider_id,
             attempt, detail)
        SELECT gen_random_uuid(), id, stream_id, partition, at + interval '1 second', "to",
               'delivered', 'log', NULL, 1, NULL
        FROM sms_events WHERE outcome = 'accepted'"#,
    )
    .await
    .unwrap();
    let events_before = digest(&pg, "sms_events", EVENT_COLUMNS).await;
    let statuses_before = digest(&pg, "sms_status", STATUS_COLUMNS).await;
    assert_eq!(events_before.0, 100_000);

    let started = Instant::now();
    MIGRATOR.run(&pg).await.unwrap();
    let took = started.elapsed();
    println!(
        "migration {PARTITIONING}: {} decisions and {} statuses moved into partitions in {:.2?}",
        events_before.0, statuses_before.0, took
    );

    assert_eq!(
        digest(&pg, "sms_events", EVENT_COLUMNS).await,
        events_before
    );
    assert_eq!(
        digest(&pg, "sms_status", STATUS_COLUMNS).await,
        statuses_before
    );
    // Into day partitions of their kind: none holds a row of another kind or day.
    let misplaced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sms_events e JOIN pg_class c ON c.oid = e.tableoid \
         WHERE c.relname <> 'sms_events_' || e.outcome || '_' || to_char(e.at AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(misplaced, 0);
    let days: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sms_events_accepted'::regclass",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(days, 120, "100,000 × 103 s spans 120 UTC days");
    let old: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('sms_events_unpartitioned')::text")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(old, None, "the old table is gone once every row moved");

    pg.close().await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .await
        .unwrap();
}
