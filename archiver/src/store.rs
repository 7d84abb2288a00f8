//! Postgres: creating and migrating the archive database, and the set-based insert of one
//! batch. Queries are checked at runtime (`sqlx::query`), so the crate builds without a database.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool};

use crate::entry::Row;
use crate::error::ArchiverError;
use crate::retention::{Kind, Partitions};

/// The schema, embedded in the binary and applied on start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to `database_url`, creating the database when it does not exist yet, and applies
/// the embedded migrations (concurrent starters serialise on sqlx's migration lock).
pub async fn connect_postgres(database_url: &str) -> Result<PgPool, ArchiverError> {
    connect_with(PgConnectOptions::from_str(database_url)?).await
}

/// [`connect_postgres`] from parsed options.
pub async fn connect_with(options: PgConnectOptions) -> Result<PgPool, ArchiverError> {
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), ArchiverError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    // Like `createdb`: work from the `postgres` maintenance database (template1 for itself).
    let maintenance = if name == "postgres" {
        "template1"
    } else {
        "postgres"
    };
    let mut conn = options.clone().database(maintenance).connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match conn.execute(sqlx::AssertSqlSafe(create)).await {
            // Another process created it between our check and our CREATE: fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

const INSERT: &str = r#"
INSERT INTO sms_events
    (id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
     violated, retry_after, policy, shadow_violated, reason, country, client, message_stored,
     api_client, ip_unattributed)
SELECT id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
       string_to_array(violated, ','), retry_after, policy,
       string_to_array(shadow_violated, ','), reason, country, client, message_stored,
       api_client, ip_unattributed
FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::timestamptz[], $5::int8[], $6::inet[],
            $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[],
            $13::int8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
            $19::text[], $20::text[], $21::bool[])
    AS t(id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
         violated, retry_after, policy, shadow_violated, reason, country, client, message_stored,
         api_client, ip_unattributed)
-- The partition keys are part of the key (see migration 0015); a redelivered entry has the same
-- id, outcome and decision time, so this skips exactly the rows already archived.
ON CONFLICT (id, outcome, at) DO NOTHING
"#;

const INSERT_STATUS: &str = r#"
INSERT INTO sms_status
    (id, message_id, stream_id, partition, at, "to", status, provider, provider_id, attempt, detail)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::timestamptz[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[])
ON CONFLICT (id, at) DO NOTHING
"#;

/// Inserts delivery status events (`(stream id, partition, event)`) in one statement; those
/// already archived are skipped by the primary key. Returns how many were new.
pub async fn insert_statuses(
    pg: &PgPool,
    partitions: &Partitions,
    statuses: &[(String, u16, &limiter::delivery::StatusEvent)],
) -> Result<u64, ArchiverError> {
    if statuses.is_empty() {
        return Ok(0);
    }
    let text =
        |f: &dyn Fn(&limiter::delivery::StatusEvent) -> Option<&str>| -> Vec<Option<String>> {
            statuses
                .iter()
                .map(|(_, _, s)| f(s).map(|t| storable(t).into_owned()))
                .collect()
        };
    let at: Vec<chrono::DateTime<chrono::Utc>> = statuses
        .iter()
        .map(|(_, _, s)| chrono::DateTime::from_timestamp_micros(s.at_us).unwrap_or_default())
        .collect();
    let days = at.iter().map(|at| (Kind::Delivery, at.date_naive()));
    partitions.ensure(pg, days).await?;
    let result = sqlx::query(INSERT_STATUS)
        .bind(statuses.iter().map(|(_, _, s)| s.id).collect::<Vec<_>>())
        .bind(
            statuses
                .iter()
                .map(|(_, _, s)| s.message_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            statuses
                .iter()
                .map(|(id, _, _)| id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            statuses
                .iter()
                .map(|(_, p, _)| i16::try_from(*p).unwrap_or(i16::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(at)
        .bind(text(&|s| Some(&s.to)))
        .bind(text(&|s| Some(s.status.as_str())))
        .bind(text(&|s| Some(&s.provider)))
        .bind(text(&|s| s.provider_id.as_deref()))
        .bind(
            statuses
                .iter()
                .map(|(_, _, s)| i32::try_from(s.attempt).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(text(&|s| s.detail.as_deref()))
        .execute(pg)
        .await?;
    Ok(result.rows_affected())
}

/// `text` as Postgres can hold it. A Postgres `text` cannot hold U+0000 and everything else it
/// can, so each NUL is written as U+FFFD (the replacement character) and every other character
/// as it is: an accepted event is archived, never dead-lettered for its encoding. (Ingest
/// refuses control characters at the door; this covers events recorded before it did.)
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One text column of `rows`, storable.
fn column<'a>(rows: &'a [Row], field: impl Fn(&'a Row) -> &'a str) -> Vec<Cow<'a, str>> {
    rows.iter().map(|r| storable(field(r))).collect()
}

fn as_strs<'a>(column: &'a [Cow<'a, str>]) -> Vec<&'a str> {
    column.iter().map(AsRef::as_ref).collect()
}

/// Inserts `rows` in one transaction with one statement (arrays unnested server-side) and
/// returns how many were new; rows already archived (a redelivery) are skipped by the primary
/// key. Nothing is visible, and nothing may be acked, unless this returns `Ok`.
pub async fn insert_rows(
    pg: &PgPool,
    partitions: &Partitions,
    rows: &[Row],
) -> Result<u64, ArchiverError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let days = rows
        .iter()
        .filter_map(|r| Kind::parse(r.outcome).map(|kind| (kind, r.at.date_naive())));
    partitions.ensure(pg, days).await?;
    let to = column(rows, |r| &r.to);
    let from: Vec<Option<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.from.as_deref().map(storable))
        .collect();
    let message = column(rows, |r| &r.message);
    let violated: Vec<String> = rows
        .iter()
        .map(|r| storable(&r.violated.join(",")).into_owned())
        .collect();
    let policy = column(rows, |r| &r.policy);
    let mut tx = pg.begin().await?;
    let inserted = sqlx::query(INSERT)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.partition).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at_us).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.ip).collect::<Vec<_>>())
        .bind(as_strs(&to))
        .bind(from.iter().map(Option::as_deref).collect::<Vec<_>>())
        .bind(as_strs(&message))
        .bind(rows.iter().map(|r| r.segments).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
        .bind(violated)
        .bind(rows.iter().map(|r| r.retry_after).collect::<Vec<_>>())
        .bind(as_strs(&policy))
        .bind(
            rows.iter()
                .map(|r| r.shadow_violated.join(","))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.country.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.client.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.stored).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.api_client.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.ip_unattributed).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nul_is_rewritten() {
        assert!(matches!(storable("plain ✓ text\n"), Cow::Borrowed(_)));
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
    }
}
