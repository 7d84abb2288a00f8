//! Where the projections live in Redis and how time is cut into buckets ([`StreamId`] is the
//! log's, re-exported from `eventlog`).
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

pub use eventlog::{PADDED_LEN, StreamId};
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

#[cfg(test)]
mod tests {
    use super::*;

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
