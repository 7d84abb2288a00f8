//! The live feed: one Redis reader per process, fanned out to every browser.
//!
//! A single task XREADs all partition streams (plain XREAD, not the consumer group, so every
//! process sees every event; on Redis Cluster one XREAD per partition, polled, as a command may
//! only name keys of one hash slot) and publishes each event, already rendered as JSON, on a
//! `tokio::sync::broadcast` channel; a second task publishes a stats tick each second while
//! anyone listens. Each `/api/live` connection is one receiver. A receiver that falls more
//! than the channel's capacity behind is disconnected instead of slowing the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::CustomCommand;
use fred::types::Value;
use limiter::Layout;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use eventlog::{
    Decoded, RawEntry, StreamId, parse_entries, parse_xread, read_groups, read_waiting,
};

use crate::consumer::now_micros;
use crate::json::{EventJson, StatsTick};

/// Events buffered per receiver before a slow one is dropped.
pub const DEFAULT_CAPACITY: usize = 8_192;

/// One message of the feed, rendered once for all receivers.
#[derive(Clone, Debug)]
pub enum LiveMessage {
    /// `event: sms`, an Event as JSON.
    Sms(Arc<str>),
    /// `event: stats`, `{"now", "totals"}`.
    Stats(Arc<str>),
    /// `event: status`, one delivery status change as the client's `status_callback` gets it:
    /// `{"id" (the message), "to", "status", "at", "provider", "provider_id", "attempt", "detail"}`.
    Status(Arc<str>),
}

/// Handle to the process's feed; cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveFeed {
    tx: broadcast::Sender<LiveMessage>,
    readers: Arc<AtomicUsize>,
    reader_name: Arc<str>,
}

impl LiveFeed {
    /// Starts the reader and the stats tick with the default capacity. The reader starts
    /// after the newest entry present now, so a subscriber that connects after `start`
    /// returns sees every later event.
    pub async fn start(redis: Pool, layout: Layout, shutdown: CancellationToken) -> Self {
        Self::start_with(redis, layout, shutdown, DEFAULT_CAPACITY).await
    }

    pub async fn start_with(
        redis: Pool,
        layout: Layout,
        shutdown: CancellationToken,
        capacity: usize,
    ) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let feed = Self {
            tx,
            readers: Arc::new(AtomicUsize::new(0)),
            reader_name: format!("{}:live", layout.namespace()).into(),
        };
        let streams = layout.streams();
        let mut positions = Vec::with_capacity(streams.len());
        for stream in &streams {
            positions.push(newest_id(redis.next(), stream).await);
        }
        let reader = Reader {
            groups: read_groups(redis.next().is_clustered(), &streams),
            client: redis.next().clone_new(),
            name: feed.reader_name.clone(),
            streams,
            positions,
            tx: feed.tx.clone(),
            // One read never overflows a receiver that keeps up.
            count: (capacity / 2).clamp(1, 1_000) as u64,
        };
        let readers = feed.readers.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            readers.fetch_add(1, Ordering::SeqCst);
            reader.run(stop).await;
            readers.fetch_sub(1, Ordering::SeqCst);
        });
        tokio::spawn(tick(redis, layout, feed.tx.clone(), shutdown));
        feed
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.tx.subscribe()
    }

    /// Reader tasks running in this process (1 while the feed runs, whatever the audience).
    pub fn reader_tasks(&self) -> usize {
        self.readers.load(Ordering::SeqCst)
    }

    /// The `CLIENT SETNAME` of the reader's Redis connection, `<namespace>:live`.
    pub fn reader_name(&self) -> &str {
        &self.reader_name
    }

    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The id of the newest entry of `stream`, or `$` when it cannot be read now (then entries
/// that arrive before the first read are missed, which only matters at startup).
async fn newest_id(redis: &Client, stream: &str) -> String {
    let newest: Result<Value, _> = redis.xrevrange(stream, "+", "-", Some(1)).await;
    match newest
        .map_err(|e| e.to_string())
        .and_then(|v| parse_entries(v).map_err(|e| e.to_string()))
    {
        Ok(entries) => entries
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, stream, "live feed starts at `$`");
            "$".to_string()
        }
    }
}

struct Reader {
    client: Client,
    name: Arc<str>,
    streams: Vec<String>,
    /// Streams one XREAD may name together (all on one Redis, one slot's on a cluster).
    groups: Vec<Vec<u16>>,
    positions: Vec<String>,
    tx: broadcast::Sender<LiveMessage>,
    count: u64,
}

/// How long a read waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);
/// How often a cluster's partitions are polled within [`BLOCK`].
const POLL: Duration = Duration::from_millis(50);

impl Reader {
    async fn run(mut self, shutdown: CancellationToken) {
        self.client.connect();
        let mut named = false;
        loop {
            let step = async {
                if !named {
                    self.client.wait_for_connect().await?;
                    let name = vec!["SETNAME".to_string(), self.name.to_string()];
                    let setname = || CustomCommand::new_static("CLIENT", None, false);
                    if self.client.is_clustered() {
                        // A cluster client holds a connection to every primary: name each.
                        for server in self.client.active_connections() {
                            let _: () = self
                                .client
                                .with_cluster_node(server)
                                .custom(setname(), name.clone())
                                .await?;
                        }
                    } else {
                        let _: () = self.client.custom(setname(), name).await?;
                    }
                    named = true;
                }
                self.read_once().await
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = step => r,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "live feed read failed; retrying");
                // A reconnect forgets the connection's name: set it again.
                named = false;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        let _ = self.client.quit().await;
    }

    /// XREAD of the streams of `group` from their positions; streams without entries are
    /// left out.
    async fn read_group(
        &self,
        group: &[u16],
        block: Option<Duration>,
    ) -> Result<Vec<(String, Vec<RawEntry>)>, eventlog::LogError> {
        let streams: Vec<&str> = group
            .iter()
            .map(|p| self.streams[usize::from(*p)].as_str())
            .collect();
        let positions: Vec<&str> = group
            .iter()
            .map(|p| self.positions[usize::from(*p)].as_str())
            .collect();
        let block = block.map(|b| u64::try_from(b.as_millis()).unwrap_or(1_000));
        let reply: Value = self
            .client
            .xread(Some(self.count), block, streams, positions)
            .await?;
        let mut read = parse_xread(reply)?;
        read.retain(|(_, entries)| !entries.is_empty());
        Ok(read)
    }

    async fn read_once(&mut self) -> Result<(), eventlog::LogError> {
        let entries = read_waiting(&self.groups, BLOCK, POLL, |g, b| self.read_group(g, b)).await?;
        let mut batch: Vec<(StreamId, LiveMessage)> = Vec::new();
        for (stream, entries) in entries {
            let Some(i) = self.streams.iter().position(|s| *s == stream) else {
                continue;
            };
            for raw in entries {
                self.positions[i] = raw.id.to_string();
                // Undecodable entries are the consumer groups' to dead-letter; the feed skips them.
                let Decoded::Event(entry) = Decoded::new(0, raw, 1) else {
                    continue;
                };
                if let Some(status) = entry.status() {
                    batch.push((entry.id, LiveMessage::Status(status_json(status).into())));
                } else if let Some(event) = entry.event()
                    && let Ok(json) = serde_json::to_string(&EventJson::new(entry.id, event))
                {
                    batch.push((entry.id, LiveMessage::Sms(json.into())));
                }
            }
        }
        // Partitions are independent streams; interleave one read's worth by stream id.
        batch.sort_by_key(|(id, _)| *id);
        for (_, message) in batch {
            // No receivers is not an error: nobody is watching.
            let _ = self.tx.send(message);
        }
        Ok(())
    }
}

/// A status change in the shape the client's `status_callback` receives, so the dashboard and
/// clients read one format.
fn status_json(status: &limiter::delivery::StatusEvent) -> String {
    serde_json::to_string(&limiter::delivery::CallbackJson::new(status)).unwrap_or_default()
}

async fn tick(
    redis: Pool,
    layout: Layout,
    tx: broadcast::Sender<LiveMessage>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        if tx.receiver_count() == 0 {
            continue;
        }
        let now_us = now_micros();
        match crate::read::totals(redis.next(), &layout, now_us).await {
            Ok(totals) => {
                if let Ok(json) = serde_json::to_string(&StatsTick::new(now_us, &totals)) {
                    let _ = tx.send(LiveMessage::Stats(json.into()));
                }
            }
            Err(e) => tracing::debug!(error = %e, "stats tick skipped"),
        }
    }
}
