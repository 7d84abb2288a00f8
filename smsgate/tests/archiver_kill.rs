//! The `smsgate archiver` process killed with SIGKILL mid-batch — after reading (entries
//! pending, nothing inserted) and after inserting (rows committed, nothing acked) — then run
//! again: every event is archived exactly once, and at once: the restarted process comes back
//! under its stable consumer name and re-reads its own pending entries instead of waiting the
//! 60 s claim idle time for them.

#![allow(clippy::unwrap_used)]

mod archiver_support;

use std::time::{Duration, Instant};

use archiver_support::{Env, Process, counts, eventually};

const EVENTS: usize = 12_000;

async fn killed_at(point: &str) {
    let env = Env::new(2).await;
    env.decide(EVENTS).await;
    let pause = format!("{point}:60000");
    let mut archiver =
        Process(env.smsgate(&["archiver", "--once"], &[("SMSGATE_FAULT_PAUSE", &pause)]));
    // Wait until the process stands at the fault point of its first batch.
    eventually(
        Duration::from_secs(30),
        "the first batch is read",
        || async { env.pending().await > 0 },
    )
    .await;
    let pg = env.pg().await;
    if point == "after-insert" {
        eventually(
            Duration::from_secs(30),
            "the first batch is committed",
            || async { counts(&pg).await.0 > 0 },
        )
        .await;
    } else {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    archiver.0.kill().unwrap(); // SIGKILL
    archiver.0.wait().unwrap();

    let (rows_at_kill, _) = counts(&pg).await;
    let pending_at_kill = env.pending().await;
    if point == "after-insert" {
        assert!(rows_at_kill > 0, "killed after a commit");
    } else {
        assert_eq!(rows_at_kill, 0, "killed before any insert");
    }
    assert!(pending_at_kill > 0, "killed before any ack");
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
}

#[tokio::test]
async fn sigkill_between_insert_and_ack_then_restart_loses_and_duplicates_nothing() {
    killed_at("after-insert").await;
}

#[tokio::test]
async fn sigkill_between_read_and_insert_then_restart_loses_and_duplicates_nothing() {
    killed_at("after-read").await;
}
