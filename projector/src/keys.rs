//! Where the projections live in Redis and how time is cut into buckets.
//!
//! Every projection key of partition `p` carries the partition's hash tag, so the apply script
//! touches one slot and runs unchanged on Redis Cluster; readers sum or merge the partitions.
//!
//! ```text
//! <ns>:{p}:proj:seconds             hash  <second>a / <second>r → count, the last 60 seconds
//! <ns>:{p}:proj:minutes             hash  <minute>a / <minute>r → count, the last 1440 minutes
//! <ns>:{p}:proj:days                hash  <day>a / <day>r → count, the last 90 days
//! <ns>:{p}:proj:recent              zset  (lex) every event, newest `recent` kept
//! <ns>:{p}:proj:accepted            zset  (lex) accepted events, newest `recent` kept
//! <ns>:{p}:proj:violations          zset  (lex) rejected events, newest `violations` kept
//! <ns>:{p}:proj:top:clients:<min>   zset  client key → rejections in that minute (expires)
//! <ns>:{p}:proj:top:numbers:<min>   zset  destination number → rejections in that minute
//! ```
//!
//! Buckets are numbered from the Unix epoch in UTC (`second = at_us / 10^6`, `minute = at_us /
//! 60·10^6`, `day = at_us / 86 400·10^6`), so every process agrees on them without a clock.

use std::fmt;
use std::str::FromStr;

use limiter::Layout;

/// How many buckets each hash keeps; older ones are pruned by the apply script.
pub const SECOND_SPAN: i64 = 60;
pub const MINUTE_SPAN: i64 = 1440;
pub const DAY_SPAN: i64 = 90;
/// Top lists rank rejections over this many minute buckets (the current one included).
pub const TOP_MINUTES: i64 = 60;

const US_PER_SECOND: i64 = 1_000_000;

pub fn second_of(at_us: i64) -> i64 {
    at_us.div_euclid(US_PER_SECOND)
}

pub fn minute_of(at_us: i64) -> i64 {
    at_us.div_euclid(60 * US_PER_SECOND)
}

pub fn day_of(at_us: i64) -> i64 {
    at_us.div_euclid(86_400 * US_PER_SECOND)
}

/// The projection keys of one partition.
#[derive(Clone, Debug)]
pub struct PartitionKeys {
    pub partition: u16,
    pub stream: String,
    pub seconds: String,
    pub minutes: String,
    pub days: String,
    pub recent: String,
    pub accepted: String,
    pub violations: String,
    pub dead_letters: String,
    layout: Layout,
}

impl PartitionKeys {
    pub fn new(layout: &Layout, partition: u16) -> Self {
        let key = |suffix: &str| layout.key(partition, suffix);
        Self {
            partition,
            stream: layout.stream(partition),
            seconds: key("proj:seconds"),
            minutes: key("proj:minutes"),
            days: key("proj:days"),
            recent: key("proj:recent"),
            accepted: key("proj:accepted"),
            violations: key("proj:violations"),
            dead_letters: layout.dead_letters(partition),
            layout: layout.clone(),
        }
    }

    pub fn all(layout: &Layout) -> Vec<Self> {
        (0..layout.partitions())
            .map(|p| Self::new(layout, p))
            .collect()
    }

    pub fn top_clients(&self, minute: i64) -> String {
        self.layout
            .key(self.partition, &format!("proj:top:clients:{minute}"))
    }

    pub fn top_numbers(&self, minute: i64) -> String {
        self.layout
            .key(self.partition, &format!("proj:top:numbers:{minute}"))
    }

    /// The fixed keys (everything but the per-minute top lists), e.g. to reset them.
    pub fn fixed(&self) -> [&str; 6] {
        [
            &self.seconds,
            &self.minutes,
            &self.days,
            &self.recent,
            &self.accepted,
            &self.violations,
        ]
    }
}

/// A stream entry id `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// Width of [`StreamId::padded`]: both parts zero-padded to 20 digits and a dash.
pub const PADDED_LEN: usize = 41;

impl StreamId {
    /// Fixed-width form whose byte order is the id order, so a lex-ordered sorted set keeps
    /// events in stream order and `before` cursors become lex ranges.
    pub fn padded(&self) -> String {
        format!("{:020}-{:020}", self.ms, self.seq)
    }

    pub fn from_padded(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes.get(..PADDED_LEN)?).ok()?;
        text.parse().ok()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a stream id like `1764313000000-0`")]
pub struct BadStreamId(pub String);

impl FromStr for StreamId {
    type Err = BadStreamId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadStreamId(s.to_owned());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_like_stream_ids() {
        let ids: Vec<StreamId> = ["9-0", "10-0", "10-2", "10-10", "1764313000000-0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut padded: Vec<String> = ids.iter().rev().map(StreamId::padded).collect();
        padded.sort();
        let back: Vec<StreamId> = padded
            .iter()
            .map(|p| StreamId::from_padded(p.as_bytes()).unwrap())
            .collect();
        assert_eq!(back, ids);
        assert_eq!(ids[4].to_string(), "1764313000000-0");
        assert_eq!(ids[0].padded().len(), PADDED_LEN);
        assert!("12".parse::<StreamId>().is_err());
        assert!("a-1".parse::<StreamId>().is_err());
    }

    #[test]
    fn buckets_are_utc_epoch_numbers() {
        let at = 1_764_313_000_123_456; // 2025-11-28T06:56:40.123456Z
        assert_eq!(second_of(at), 1_764_313_000);
        assert_eq!(minute_of(at), 1_764_313_000 / 60);
        assert_eq!(day_of(at), 1_764_313_000 / 86_400);
        assert_eq!(second_of(-1), -1);
    }

    #[test]
    fn keys_share_the_partition_hash_tag() {
        let keys = PartitionKeys::new(&Layout::new("t", 4), 3);
        assert_eq!(keys.minutes, "t:{3}:proj:minutes");
        assert_eq!(keys.top_clients(7), "t:{3}:proj:top:clients:7");
        assert_eq!(keys.stream, "t:{3}:events");
    }
}
