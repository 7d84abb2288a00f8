//! The crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    #[error("rebuild source: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
}
