//! The `smsgate archiver` process killed with SIGKILL mid-batch — after reading (entries
//! pending, nothing inserted) and after inserting (rows committed, nothing acked) — then run
//! again: every event is archived exactly once, and at once: the restarted process comes back
//! under its stable consumer name and re-reads its own pending entries instead of waiting the
//! 60 s claim idle time for them.
//!
//! The binary has no fault hook: the test holds the process at each point from outside and
//! observes it there. A `SHARE` lock on `sms_events` held by the test blocks the archiver's
//! INSERT, so with entries pending on Redis and its session waiting on that lock the process
//! stands between read and commit. For the second point Redis (a private server, so no other
//! test is paused) is paused for writes before the lock is released: the INSERT commits, and
//! the XACK that would follow waits; rows in Postgres show the commit.

#![allow(clippy::unwrap_used)]

mod archiver_support;

use std::time::{Duration, Instant};

use archiver_support::{Env, Process, counts, eventually};
use fred::interfaces::ClientLike;
use sqlx::{Connection, Executor, PgConnection};

const EVENTS: usize = 12_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Point {
    AfterRead,
    AfterInsert,
}

/// Sessions of the test database waiting for a lock: the archiver's INSERT behind ours.
async fn waiting_on_lock(pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pg)
    .await
    .unwrap()
}

async fn killed_at(point: Point) {
    let private = testkit::PrivateRedis::start();
    let env = match point {
        // Pausing Redis would stall every other test on a shared server.
        Point::AfterInsert => {
            Env::with_redis(&testkit::database_server_url(), &private.url(), 2).await
        }
        Point::AfterRead => Env::new(2).await,
    };
    // A first run on empty streams creates the database, its schema and today's partitions,
    // so the killed run below needs no DDL that our lock would block before it reads.
    env.archive_once(&[]);
    env.decide(EVENTS).await;
    let pg = env.pg().await;
    let mut lock = PgConnection::connect(&env.database_url).await.unwrap();
    lock.execute("BEGIN").await.unwrap();
    lock.execute("LOCK TABLE sms_events IN SHARE MODE")
        .await
        .unwrap();

    let mut archiver = Process(env.smsgate(&["archiver", "--once"], &[]));
    eventually(
        Duration::from_secs(30),
        "the first batch is read and its insert waits on the lock",
        || async { env.pending().await > 0 && waiting_on_lock(&pg).await > 0 },
    )
    .await;
    if point == Point::AfterInsert {
        let _: () = env
            .redis
            .next()
            .custom(
                fred::cmd!("CLIENT"),
                vec!["PAUSE".to_owned(), "60000".to_owned(), "WRITE".to_owned()],
            )
            .await
            .unwrap();
        lock.execute("ROLLBACK").await.unwrap();
        eventually(
            Duration::from_secs(30),
            "the first batch is committed",
            || async { counts(&pg).await.0 > 0 },
        )
        .await;
        // The XACK after the commit is a write: it waits on the paused Redis.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    archiver.0.kill().unwrap(); // SIGKILL
    archiver.0.wait().unwrap();
    if point == Point::AfterRead {
        lock.execute("ROLLBACK").await.unwrap();
    }

    let (rows_at_kill, _) = counts(&pg).await;
    let pending_at_kill = env.pending().await;
    match point {
        Point::AfterInsert => assert!(rows_at_kill > 0, "killed after a commit"),
        Point::AfterRead => assert_eq!(rows_at_kill, 0, "killed before any insert"),
    }
    assert!(pending_at_kill > 0, "killed before any ack");
    if point == Point::AfterInsert {
        let _: () = env
            .redis
            .next()
            .custom(fred::cmd!("CLIENT"), vec!["UNPAUSE".to_owned()])
            .await
            .unwrap();
    }
    assert_eq!(
        env.xlen().await,
        EVENTS as u64,
        "nothing unacked was trimmed"
    );

    // The restarted process (same host, same consumer name) resumes the dead one's entries
    // at once, with the production claim idle time of 60 s in force.
    let started = Instant::now();
    env.archive_once(&[]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the restart drained in {took:?}, not after the claim idle time"
    );
    let (rows, distinct) = counts(&pg).await;
    assert_eq!(rows, EVENTS as i64, "no event missing");
    assert_eq!(distinct, rows, "none duplicated");
    assert_eq!(env.pending().await, 0, "everything acked");
    assert_eq!(env.xlen().await, 0, "and trimmed");
    pg.close().await;
    drop(env);
    drop(private);
}

#[tokio::test]
async fn sigkill_between_insert_and_ack_then_restart_loses_and_duplicates_nothing() {
    killed_at(Point::AfterInsert).await;
}

#[tokio::test]
async fn sigkill_between_read_and_insert_then_restart_loses_and_duplicates_nothing() {
    killed_at(Point::AfterRead).await;
}
