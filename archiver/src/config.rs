//! The archiver's configuration. The binary builds it from `SMSGATE_ARCHIVE_INTERVAL` and
//! friends; the library never reads the environment. Crash tests need no hook here: they
//! stop the process from outside (a held table lock, a paused Redis) and observe where it is.

use std::time::Duration;

/// How an archiver process behaves. `Default` gives the production values.
#[derive(Clone, Debug)]
pub struct ArchiverConfig {
    /// How often everything new is drained into Postgres (`SMSGATE_ARCHIVE_INTERVAL`, 10 min).
    pub interval: Duration,
    /// Entries per batch, i.e. per Postgres transaction.
    pub batch_size: usize,
    /// Archive early, before the interval is up, once this many entries wait unarchived over
    /// all partitions, so a burst cannot grow Redis memory without bound.
    pub backlog_threshold: u64,
    /// How often the backlog is measured between drains (also refreshes the lag metrics).
    pub backlog_check: Duration,
    /// This process's consumer name in the group; unique per process (e.g. `hostname-pid`).
    pub consumer: String,
    /// Entries pending this long on another consumer are presumed abandoned and claimed.
    pub claim_idle: Duration,
    /// An entry delivered more often than this without being archived is dead-lettered: it has
    /// crashed or stalled that many archivers already.
    pub max_deliveries: u64,
    /// Consumers with nothing pending that have been idle this long are removed from the group,
    /// so short-lived consumers (`--once`, restarts under new pids) do not pile up.
    pub forget_idle: Duration,
    /// First and longest wait between retries while Postgres (or Redis) fails.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How long each kind of event is archived (`SMSGATE_RETENTION`).
    pub retention: crate::retention::Retention,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
            batch_size: 5_000,
            backlog_threshold: 100_000,
            backlog_check: Duration::from_secs(1),
            consumer: format!("archiver-{}", std::process::id()),
            claim_idle: Duration::from_secs(60),
            max_deliveries: 10,
            forget_idle: Duration::from_secs(3_600),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            retention: crate::retention::Retention::default(),
        }
    }
}
