//! The `log` provider, the default: appends each message to a file (`SMSGATE_OUTBOX`) as one
//! JSON line and calls it delivered, so a laptop delivers without an account.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::provider::{Accepted, Outbound, Provider, SendError};

pub struct LogProvider {
    path: PathBuf,
    /// One writer at a time, so lines of concurrent sends never interleave.
    file: Mutex<Option<tokio::fs::File>>,
}

impl LogProvider {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let mut file = self.file.lock().await;
        if file.is_none() {
            *file = Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await?,
            );
        }
        let Some(f) = file.as_mut() else {
            return Ok(());
        };
        let written = async {
            f.write_all(line).await?;
            f.flush().await
        }
        .await;
        if written.is_err() {
            // Reopen next time: the file may have been rotated or its disk replaced.
            *file = None;
        }
        written
    }
}

impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, message: Outbound<'a>) -> BoxFuture<'a, Result<Accepted, SendError>> {
        async move {
            let mut line = serde_json::to_vec(&serde_json::json!({
                "id": message.id.to_string(),
                "to": message.to,
                "from": message.from,
                "body": message.body,
                "at": limiter::json::rfc3339_micros(limiter::delivery::now_us()),
            }))
            .map_err(|e| SendError::permanent(e.to_string()))?;
            line.push(b'\n');
            self.append(&line).await.map_err(|e| {
                SendError::transient(format!("writing {}: {e}", self.path.display()))
            })?;
            Ok(Accepted {
                provider_id: format!("log-{}", message.id),
                delivered: true,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_message_is_one_json_line() {
        let dir = std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let provider = LogProvider::new(dir.join("outbox.log"));
        for body in ["one", "two\nlines"] {
            let id = uuid::Uuid::now_v7();
            let accepted = provider
                .send(Outbound {
                    id,
                    to: "+14155550123",
                    from: None,
                    body,
                })
                .await
                .unwrap();
            assert!(accepted.delivered);
        }
        let text = std::fs::read_to_string(provider.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["body"], "two\nlines");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
