//! Why a read over the archive and the stream failed. Bad input is refused before any read,
//! so at the HTTP edge every one of these is an outage (503).

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    RedisDown,
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("unexpected reply: {0}")]
    Reply(String),
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
    /// Reading what retention holds (the archiver's own tables) failed.
    #[error(transparent)]
    Archive(#[from] archiver::ArchiverError),
}

impl From<eventlog::BadStreamId> for LedgerError {
    fn from(e: eventlog::BadStreamId) -> Self {
        Self::Reply(e.to_string())
    }
}

/// A 503 with the one `Retry-After` policy; the cause is logged, never sent.
impl From<LedgerError> for problem::ApiError {
    fn from(e: LedgerError) -> Self {
        Self::unavailable(e)
    }
}
