//! The crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
    #[error("rebuild source: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
}
