//! Errors of the archiver, and the one distinction the worker acts on: a Postgres failure that
//! will pass (an outage: keep the batch, back off, retry) versus one caused by the rows
//! themselves (bad data: find the offending entries and dead-letter them).

/// Why a step of the archiver failed. The batch in hand is never lost by an error: it stays
/// pending in Redis, and in memory for a Postgres error, until it is committed and acked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    RedisDown,
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("migrating the archive schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
}

impl From<eventlog::BadStreamId> for ArchiverError {
    fn from(e: eventlog::BadStreamId) -> Self {
        Self::Reply(e.to_string())
    }
}

impl ArchiverError {
    /// True when retrying the same statement later may succeed: the connection, the server or
    /// the pool failed. False when Postgres refused the data itself (SQLSTATE classes 22 data
    /// exception, 23 integrity violation, 54 program limit): retrying that batch would fail
    /// forever, so its offending entries must be set aside.
    pub fn is_transient(&self) -> bool {
        if self.is_missing_partition() {
            return true;
        }
        match self {
            Self::Postgres(sqlx::Error::Database(db)) => !db
                .code()
                .is_some_and(|code| ["22", "23", "54"].iter().any(|c| code.starts_with(c))),
            _ => true,
        }
    }
}

impl ArchiverError {
    /// A row whose day partition is gone (dropped by another archiver's retention step after
    /// this one created it): not the row's fault, and the retry creates the partition again.
    pub fn is_missing_partition(&self) -> bool {
        matches!(self, Self::Postgres(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("23514")
                && db.message().starts_with("no partition of relation"))
    }
}

/// At the HTTP edge every archive failure is an outage of the archive routes (bad input is
/// refused before any query): a 503 with the one `Retry-After` policy, the cause logged.
impl From<ArchiverError> for problem::ApiError {
    fn from(e: ArchiverError) -> Self {
        Self::unavailable(e)
    }
}
