//! [`StreamId`]: a Redis stream entry id `<ms>-<seq>`, ordered as Redis orders them.

use std::fmt;
use std::str::FromStr;

/// A stream entry id `<ms>-<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// Width of [`StreamId::padded`]: both parts zero-padded to 20 digits and a dash.
pub const PADDED_LEN: usize = 41;

impl StreamId {
    /// Fixed-width form whose byte order is the id order, so a lex-ordered sorted set keeps
    /// entries in stream order and `before` cursors become lex ranges.
    pub fn padded(&self) -> String {
        format!("{:020}-{:020}", self.ms, self.seq)
    }

    /// Reads the id back from the first [`PADDED_LEN`] bytes of `bytes`.
    pub fn from_padded(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes.get(..PADDED_LEN)?).ok()?;
        text.parse().ok()
    }

    /// The smallest id after this one.
    pub fn next(&self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A text that is not a stream id.
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
        assert!("1-".parse::<StreamId>().is_err());
        assert_eq!(ids[1].next(), "10-1".parse().unwrap());
    }
}
