//! The consumer-group worker: reads every partition's stream as consumer group `projector`
//! and applies what it reads with [`crate::apply`].
//!
//! Recovery follows the archiver's rules: a consumer first re-reads its own pending entries
//! (delivered before a crash, never acknowledged), then periodically claims entries that other
//! consumers left idle for `claim_idle` (XAUTOCLAIM), then reads new entries. Entries that do
//! not decode go to the partition's dead-letter stream in the same atomic step that
//! acknowledges them, so they never block the pipeline.
//!
//! On one Redis every partition's stream is read by one blocking `XREADGROUP`. On Redis Cluster
//! a multi-key command may only name keys of one hash slot, and partitions are slots of their
//! own, so each partition is read by a command of its own: non-blocking, all at once, polled
//! every [`ProjectorConfig::poll`] until `block` has passed.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::Value;
use futures::future::try_join_all;
use limiter::{Layout, Policy};
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyReport, Entry, Retention, apply};
use crate::error::ProjectorError;
use crate::keys::{PartitionKeys, StreamId};

/// The consumer group every projector process joins.
pub const GROUP: &str = "projector";

#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    /// This process's consumer name; unique per process so its pending entries are its own.
    pub consumer: String,
    /// Entries read per partition and step.
    pub batch_size: usize,
    /// How long another consumer's entry must sit unacknowledged before it is claimed.
    pub claim_idle: Duration,
    /// How long one read waits for new entries (kept under the Redis command timeout).
    pub block: Duration,
    /// On Redis Cluster, where no single read can wait on every partition: how often the
    /// partitions are polled while waiting for new entries.
    pub poll: Duration,
    pub retention: Retention,
}

impl ProjectorConfig {
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            consumer: consumer.into(),
            batch_size: 500,
            // Claiming a live but slow consumer's entries costs nothing (the apply step counts
            // an entry once whoever applies it), so a dead consumer's entries wait only briefly.
            claim_idle: Duration::from_secs(5),
            block: Duration::from_secs(1),
            poll: Duration::from_millis(50),
            retention: Retention::default(),
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to read within the block time.
    Idle,
    Projected(ApplyReport),
}

/// Where a consumer stands; only ever touched by one step at a time.
#[derive(Debug, Default)]
struct State {
    groups_ready: bool,
    /// Per partition: own pending entries not yet re-read since start.
    draining: Vec<bool>,
    last_claim: Option<Instant>,
    last_lag_update: Option<Instant>,
    reader_started: bool,
}

pub struct Projector {
    redis: Pool,
    /// A connection of its own: a blocking XREADGROUP would stall every command queued behind
    /// it on a shared pool connection (the API's, in `smsgate serve`).
    reader: Client,
    layout: Layout,
    policy: Policy,
    config: ProjectorConfig,
    partitions: Vec<PartitionKeys>,
    /// Partitions one XREADGROUP may read together (see [`read_groups`]).
    groups: Vec<Vec<usize>>,
    state: tokio::sync::Mutex<State>,
}

impl Projector {
    pub fn new(redis: Pool, layout: Layout, policy: Policy, config: ProjectorConfig) -> Self {
        let reader = redis.next().clone_new();
        let partitions = PartitionKeys::all(&layout);
        let streams: Vec<String> = partitions.iter().map(|k| k.stream.clone()).collect();
        Self {
            groups: read_groups(redis.next().is_clustered(), &streams),
            partitions,
            redis,
            reader,
            layout,
            policy,
            config,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn config(&self) -> &ProjectorConfig {
        &self.config
    }

    /// Projects until `shutdown` fires. Each step is applied atomically, so stopping between
    /// a read and its apply leaves the entries pending for this consumer's next start.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> Result<(), ProjectorError> {
        loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => break,
                step = self.try_process_batch() => step,
            };
            if let Err(e) = step {
                tracing::warn!(error = %e, "projector step failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        let _ = self.reader.quit().await;
        Ok(())
    }

    /// One step: own pending entries while any are left, else a claim pass when due, else new
    /// entries (waiting up to `block` for them).
    pub async fn try_process_batch(&self) -> Result<Outcome, ProjectorError> {
        let mut state = self.state.lock().await;
        if !state.groups_ready {
            self.ensure_groups().await?;
            state.groups_ready = true;
            state.draining = vec![true; self.partitions.len()];
        }
        if !state.reader_started {
            self.reader.connect();
            state.reader_started = true;
        }
        let result = self.step(&mut state).await;
        if let Err(ProjectorError::Redis(e)) = &result {
            // The stream or the group vanished (e.g. the namespace was reset): recreate both.
            if e.details().starts_with("NOGROUP") {
                state.groups_ready = false;
            }
        }
        if state
            .last_lag_update
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            state.last_lag_update = Some(Instant::now());
            if let Ok(lag) = self.lag_entries().await {
                metrics::gauge!("smsgate_projector_lag_entries").set(lag as f64);
                if lag == 0 {
                    metrics::gauge!("smsgate_projector_lag_seconds").set(0.0);
                }
            }
        }
        result
    }

    async fn step(&self, state: &mut State) -> Result<Outcome, ProjectorError> {
        let draining: Vec<usize> = (0..self.partitions.len())
            .filter(|p| state.draining[*p])
            .collect();
        if !draining.is_empty() {
            let groups: Vec<Vec<usize>> = self
                .groups
                .iter()
                .map(|g| g.iter().copied().filter(|p| state.draining[*p]).collect())
                .filter(|g: &Vec<usize>| !g.is_empty())
                .collect();
            let read = self.read_all(&groups, "0").await?;
            let mut report = ApplyReport::default();
            let mut seen = 0;
            for p in draining {
                let entries = read.get(&p).map(Vec::as_slice).unwrap_or_default();
                if entries.is_empty() {
                    state.draining[p] = false;
                }
                seen += entries.len();
                report += self.apply(p, entries).await?;
            }
            if seen > 0 {
                return Ok(Outcome::Projected(report));
            }
        }

        if state
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.config.claim_idle)
        {
            state.last_claim = Some(Instant::now());
            let mut report = ApplyReport::default();
            let mut seen = 0;
            for p in 0..self.partitions.len() {
                let claimed = self.claim(p).await?;
                seen += claimed.len();
                report += self.apply(p, &claimed).await?;
            }
            if seen > 0 {
                return Ok(Outcome::Projected(report));
            }
        }

        let read = self.read_new().await?;
        if read.values().all(Vec::is_empty) {
            metrics::gauge!("smsgate_projector_lag_seconds").set(0.0);
            return Ok(Outcome::Idle);
        }
        let mut report = ApplyReport::default();
        for (p, entries) in &read {
            report += self.apply(*p, entries).await?;
        }
        Ok(Outcome::Projected(report))
    }

    /// New entries of every partition, waiting up to `block` for the first: one blocking read
    /// on one Redis, polling reads of each partition on a cluster.
    async fn read_new(&self) -> Result<HashMap<usize, Vec<Entry>>, ProjectorError> {
        let block = u64::try_from(self.config.block.as_millis()).unwrap_or(1_000);
        if let [all] = self.groups.as_slice() {
            return self
                .read_group(&self.reader, all, ">", (block > 0).then_some(block))
                .await;
        }
        let deadline = Instant::now() + self.config.block;
        loop {
            let read = self.read_all(&self.groups, ">").await?;
            if read.values().any(|e| !e.is_empty()) || Instant::now() >= deadline {
                return Ok(read);
            }
            tokio::time::sleep(self.config.poll.min(deadline - Instant::now())).await;
        }
    }

    /// One non-blocking XREADGROUP per group, all at once, from `id` (`0` for own pending
    /// entries, `>` for new ones).
    async fn read_all(
        &self,
        groups: &[Vec<usize>],
        id: &str,
    ) -> Result<HashMap<usize, Vec<Entry>>, ProjectorError> {
        let reads = try_join_all(
            groups
                .iter()
                .map(|group| self.read_group(self.redis.next(), group, id, None)),
        )
        .await?;
        Ok(reads.into_iter().flatten().collect())
    }

    async fn ensure_groups(&self) -> Result<(), ProjectorError> {
        for keys in &self.partitions {
            let created: Result<(), fred::error::Error> = self
                .redis
                .next()
                .xgroup_create(keys.stream.as_str(), GROUP, "0", true)
                .await;
            match created {
                Err(e) if !e.details().starts_with("BUSYGROUP") => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// XREADGROUP over the streams of `partitions` from `id`, entries keyed by partition.
    async fn read_group(
        &self,
        client: &Client,
        partitions: &[usize],
        id: &str,
        block_ms: Option<u64>,
    ) -> Result<HashMap<usize, Vec<Entry>>, ProjectorError> {
        let streams: Vec<String> = partitions
            .iter()
            .map(|p| self.partitions[*p].stream.clone())
            .collect();
        let ids = vec![id.to_string(); streams.len()];
        let count = Some(self.config.batch_size as u64);
        let reply: Value = client
            .xreadgroup(
                GROUP,
                self.config.consumer.as_str(),
                count,
                block_ms,
                false,
                streams,
                ids,
            )
            .await?;
        let mut out = HashMap::new();
        for (stream, entries) in parse_xread(reply)? {
            if let Some(p) = self.partition_of_stream(&stream) {
                out.insert(p, entries);
            }
        }
        Ok(out)
    }

    /// Takes over entries other consumers have left idle for `claim_idle`.
    async fn claim(&self, p: usize) -> Result<Vec<Entry>, ProjectorError> {
        let idle = u64::try_from(self.config.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let reply: Value = self
            .redis
            .next()
            .xautoclaim(
                self.partitions[p].stream.as_str(),
                GROUP,
                self.config.consumer.as_str(),
                idle,
                "0-0",
                Some(self.config.batch_size as u64),
                false,
            )
            .await?;
        parse_autoclaim(reply)
    }

    async fn apply(&self, p: usize, entries: &[Entry]) -> Result<ApplyReport, ProjectorError> {
        if entries.is_empty() {
            return Ok(ApplyReport::default());
        }
        let report = apply(
            self.redis.next(),
            &self.partitions[p],
            Some(GROUP),
            &self.config.retention,
            entries,
        )
        .await?;
        metrics::counter!("smsgate_projector_events_projected_total")
            .increment(report.applied as u64);
        if report.dead_lettered > 0 {
            tracing::warn!(
                partition = p,
                count = report.dead_lettered,
                "undecodable entries moved to the dead letters"
            );
            metrics::counter!("smsgate_dead_letters_total", "group" => GROUP)
                .increment(report.dead_lettered as u64);
        }
        let now_us = now_micros();
        let delays = entries
            .iter()
            .filter_map(Entry::event)
            .map(|e| (now_us - e.at_us).max(0) as f64 / 1e6);
        let mut newest = None;
        for delay in delays {
            metrics::histogram!("smsgate_projector_delay_seconds").record(delay);
            newest = Some(delay);
        }
        if let Some(delay) = newest {
            metrics::gauge!("smsgate_projector_lag_seconds").set(delay);
        }
        Ok(report)
    }

    /// Entries on the streams the group has not yet delivered or acknowledged: what XINFO
    /// GROUPS reports as `lag` plus `pending`, summed over partitions.
    pub async fn lag_entries(&self) -> Result<u64, ProjectorError> {
        let mut total = 0;
        for keys in &self.partitions {
            let groups: Value = self.redis.next().xinfo_groups(keys.stream.as_str()).await?;
            let Value::Array(groups) = groups else {
                continue;
            };
            for group in groups.into_iter().map(parse_map) {
                if group.get("name").and_then(Value::as_str).as_deref() != Some(GROUP) {
                    continue;
                }
                let number = |k: &str| group.get(k).and_then(Value::as_u64).unwrap_or_default();
                total += number("lag") + number("pending");
            }
        }
        Ok(total)
    }

    fn partition_of_stream(&self, stream: &str) -> Option<usize> {
        self.partitions.iter().position(|k| k.stream == stream)
    }
}

/// Groups of stream indexes that one multi-key stream command may name together: all of them
/// on one Redis; on a cluster those whose keys share a hash slot (the partitions' hash tags
/// differ, so in practice one stream per group).
pub(crate) fn read_groups(clustered: bool, streams: &[String]) -> Vec<Vec<usize>> {
    if !clustered {
        return vec![(0..streams.len()).collect()];
    }
    let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, stream) in streams.iter().enumerate() {
        by_slot
            .entry(fred::util::redis_keyslot(stream.as_bytes()))
            .or_default()
            .push(i);
    }
    by_slot.into_values().collect()
}

pub(crate) fn parse_id(id: &str) -> Result<StreamId, ProjectorError> {
    id.parse()
        .map_err(|_| ProjectorError::Reply(format!("stream id `{id}`")))
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Fields of one entry: `[field, value, …]`; nil (an entry trimmed while pending) is empty.
fn parse_fields(value: Value) -> HashMap<String, Bytes> {
    let mut fields = HashMap::new();
    if let Value::Array(flat) = value {
        let mut flat = flat.into_iter();
        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
            let value = match v {
                Value::Bytes(b) => b,
                Value::String(s) => s.into_inner(),
                _ => Bytes::new(),
            };
            fields.insert(k.as_string().unwrap_or_default(), value);
        }
    }
    fields
}

/// `[[id, [field, value, …] | nil], …]` as returned for one stream; nil entries are skipped.
pub(crate) fn parse_entries(value: Value) -> Result<Vec<Entry>, ProjectorError> {
    let Value::Array(entries) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(pair) = entry else { continue };
        let mut pair = pair.into_iter();
        let id = pair
            .next()
            .and_then(|v| v.as_string())
            .ok_or_else(|| ProjectorError::Reply("stream entry without id".into()))?;
        let fields = parse_fields(pair.next().unwrap_or(Value::Null));
        out.push(Entry::from_fields(parse_id(&id)?, &fields));
    }
    Ok(out)
}

/// XREAD / XREADGROUP: nil (nothing within the block time), or per stream `[name, entries]`
/// (RESP2) or a map of name to entries (RESP3).
pub(crate) fn parse_xread(value: Value) -> Result<Vec<(String, Vec<Entry>)>, ProjectorError> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    Some((pair.next()?, pair.next()?))
                }
                _ => None,
            })
            .collect(),
        other => return Err(ProjectorError::Reply(format!("XREAD: {other:?}"))),
    };
    pairs
        .into_iter()
        .map(|(name, entries)| {
            let name = name
                .as_string()
                .ok_or_else(|| ProjectorError::Reply("XREAD: stream name".into()))?;
            Ok((name, parse_entries(entries)?))
        })
        .collect()
}

/// XAUTOCLAIM answers `[cursor, [[id, [field, value, …]] | nil, …], deleted ids]` (Redis 7);
/// entries deleted from the stream are already dropped from the pending list by Redis.
fn parse_autoclaim(reply: Value) -> Result<Vec<Entry>, ProjectorError> {
    let Value::Array(parts) = reply else {
        return Err(ProjectorError::Reply("XAUTOCLAIM: not an array".into()));
    };
    parse_entries(parts.into_iter().nth(1).unwrap_or(Value::Null))
}

/// A flat `[key, value, …]` (RESP2) or map (RESP3) reply as a map.
pub(crate) fn parse_map(value: Value) -> HashMap<String, Value> {
    match value {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((Value::from(k).as_string()?, v)))
            .collect(),
        Value::Array(flat) => {
            let mut out = HashMap::new();
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                if let Some(k) = k.as_string() {
                    out.insert(k, v);
                }
            }
            out
        }
        _ => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_redis_reads_every_partition_at_once_a_cluster_one_slot_at_a_time() {
        let streams = Layout::new("t", 16).streams();
        assert_eq!(read_groups(false, &streams), [(0..16).collect::<Vec<_>>()]);
        let groups = read_groups(true, &streams);
        assert_eq!(groups.len(), 16);
        for group in &groups {
            let slots: std::collections::HashSet<u16> = group
                .iter()
                .map(|i| fred::util::redis_keyslot(streams[*i].as_bytes()))
                .collect();
            assert_eq!(slots.len(), 1);
        }
        let mut all: Vec<usize> = groups.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..16).collect::<Vec<_>>());
    }
}
