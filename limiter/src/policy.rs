//! The rate-limit policy: a list of rolling windows, each `limit` requests per `duration`.

use std::fmt;
use std::time::Duration;

/// One rolling window: at most `limit` accepted requests in any `duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The window's name as written in the policy, e.g. `1m`; used in headers, events and metrics.
    pub name: String,
    pub limit: u32,
    pub duration: Duration,
}

impl Window {
    pub fn duration_micros(&self) -> i64 {
        i64::try_from(self.duration.as_micros()).unwrap_or(i64::MAX)
    }
}

/// All windows a request must pass, shortest first. Parsed from e.g. `3/1m,10/1d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    windows: Vec<Window>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the policy is empty; expected a list like `3/1m,10/1d`")]
    Empty,
    #[error("`{0}` is not `N/duration` (e.g. `3/1m`)")]
    Malformed(String),
    #[error("`{0}`: the limit must be a whole number of at least 1")]
    BadLimit(String),
    #[error(
        "`{0}`: the duration must be a positive number with a unit s, m, h, d or w (e.g. `1m`)"
    )]
    BadDuration(String),
    #[error("window `{0}` appears twice")]
    Duplicate(String),
}

impl Policy {
    /// The default policy of DESIGN.md: 3 per rolling minute and 10 per rolling day.
    pub const DEFAULT: &'static str = "3/1m,10/1d";

    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut windows = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (limit, duration) = part
                .split_once('/')
                .ok_or_else(|| PolicyError::Malformed(part.to_owned()))?;
            let limit: u32 = limit
                .trim()
                .parse()
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| PolicyError::BadLimit(part.to_owned()))?;
            let name = duration.trim().to_owned();
            let duration =
                parse_duration(&name).ok_or_else(|| PolicyError::BadDuration(part.to_owned()))?;
            if windows.iter().any(|w: &Window| w.name == name) {
                return Err(PolicyError::Duplicate(name));
            }
            windows.push(Window {
                name,
                limit,
                duration,
            });
        }
        if windows.is_empty() {
            return Err(PolicyError::Empty);
        }
        windows.sort_by_key(|w| w.duration);
        Ok(Self { windows })
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The longest window: how long an accepted request can still count against its client.
    pub fn longest(&self) -> Duration {
        self.windows
            .iter()
            .map(|w| w.duration)
            .max()
            .unwrap_or_default()
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default policy parses")
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}/{}", w.limit, w.name)?;
        }
        Ok(())
    }
}

/// `90s`, `1m`, `2h`, `1d`, `1w`; also `1.5s`-free: whole numbers only, so windows are exact.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_three_a_minute_and_ten_a_day() {
        let policy = Policy::default();
        let windows: Vec<_> = policy
            .windows()
            .iter()
            .map(|w| (w.name.as_str(), w.limit, w.duration.as_secs()))
            .collect();
        assert_eq!(windows, [("1m", 3, 60), ("1d", 10, 86_400)]);
    }

    #[test]
    fn windows_are_sorted_shortest_first_and_display_round_trips() {
        let policy = Policy::parse("10/1d, 3/1m,100/1h").unwrap();
        assert_eq!(policy.to_string(), "3/1m,100/1h,10/1d");
        assert_eq!(Policy::parse(&policy.to_string()).unwrap(), policy);
        assert_eq!(policy.longest(), Duration::from_secs(86_400));
    }

    #[test]
    fn malformed_policies_are_rejected_with_a_reason() {
        assert_eq!(Policy::parse(""), Err(PolicyError::Empty));
        assert_eq!(Policy::parse("3"), Err(PolicyError::Malformed("3".into())));
        assert_eq!(
            Policy::parse("0/1m"),
            Err(PolicyError::BadLimit("0/1m".into()))
        );
        assert_eq!(
            Policy::parse("x/1m"),
            Err(PolicyError::BadLimit("x/1m".into()))
        );
        assert_eq!(
            Policy::parse("3/1y"),
            Err(PolicyError::BadDuration("3/1y".into()))
        );
        assert_eq!(
            Policy::parse("3/0s"),
            Err(PolicyError::BadDuration("3/0s".into()))
        );
        assert_eq!(
            Policy::parse("3/m"),
            Err(PolicyError::BadDuration("3/m".into()))
        );
        assert_eq!(
            Policy::parse("3/1m,5/1m"),
            Err(PolicyError::Duplicate("1m".into()))
        );
    }

    #[test]
    fn durations_accept_every_unit() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("90m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1.5s"), None);
    }
}
