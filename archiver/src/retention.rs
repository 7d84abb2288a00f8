//! Retention: how long the archive keeps each kind of event (`SMSGATE_RETENTION`), and the
//! partition maintenance that enforces it.
//!
//! `sms_events` is list-partitioned by outcome and then range-partitioned by UTC day on the
//! decision time; `sms_status` (kind `delivery`) by day directly (migration 0015). Expiry drops
//! a whole day partition once every row in it is past its kind's retention: never a
//! row-by-row `DELETE`, so expiry costs no dead tuples, no vacuum and no index churn. Each drop
//! records in `sms_retention` the instant before which that kind is no longer held, in the same
//! transaction, so replay, audit and history say which range is gone instead of returning
//! silently less.
//!
//! Partitions are created ahead (today and the next [`DAYS_AHEAD`] days), and the archiver
//! also makes sure the days of each batch exist before inserting it, so an event of any day
//! (a late one, a replayed stream) always has somewhere to go.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::error::ArchiverError;
use crate::metrics as m;

/// Partitions created ahead of today, so midnight never waits for DDL.
pub const DAYS_AHEAD: u32 = 3;

/// Serialises partition DDL across archiver processes (a `pg_advisory_xact_lock` key).
const DDL_LOCK: i64 = 0x0073_6d73_6772_746e; // "smsgrtn"

/// What a row of the archive is, for retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = RetentionKind)]
pub enum Kind {
    Accepted,
    Rejected,
    Blocked,
    /// Delivery status changes (`sms_status`).
    Delivery,
}

impl Kind {
    pub const ALL: [Self; 4] = [
        Self::Accepted,
        Self::Rejected,
        Self::Blocked,
        Self::Delivery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Blocked => "blocked",
            Self::Delivery => "delivery",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The partitioned table holding this kind's day partitions.
    pub fn parent(self) -> &'static str {
        match self {
            Self::Accepted => "sms_events_accepted",
            Self::Rejected => "sms_events_rejected",
            Self::Blocked => "sms_events_blocked",
            Self::Delivery => "sms_status",
        }
    }

    /// The day partition of this kind holding `day`.
    pub fn partition(self, day: NaiveDate) -> String {
        format!("{}_{}", self.parent(), day.format("%Y%m%d"))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind is kept; a kind without a duration is kept forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    keep: BTreeMap<Kind, Duration>,
}

impl Default for Retention {
    /// Violations are kept longer than ordinary traffic, as the seed asks:
    /// `accepted=30d,rejected=90d,blocked=90d,delivery=30d`.
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            keep: BTreeMap::from([
                (Kind::Accepted, Duration::from_secs(30 * DAY)),
                (Kind::Rejected, Duration::from_secs(90 * DAY)),
                (Kind::Blocked, Duration::from_secs(90 * DAY)),
                (Kind::Delivery, Duration::from_secs(30 * DAY)),
            ]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("`{0}` is not `kind=duration` (kinds: accepted, rejected, blocked, delivery)")]
    Entry(String),
    #[error("`{0}` is not a duration such as 30d, 12h or forever")]
    Duration(String),
}

impl FromStr for Retention {
    type Err = RetentionError;

    /// `accepted=30d,rejected=90d`: kinds not named keep the default; `forever` keeps a kind.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut retention = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kind, keep) = entry
                .split_once('=')
                .ok_or_else(|| RetentionError::Entry(entry.to_owned()))?;
            let kind = Kind::parse(kind.trim().to_ascii_lowercase().as_str())
                .ok_or_else(|| RetentionError::Entry(entry.to_owned()))?;
            match parse_keep(keep.trim())? {
                Some(keep) => retention.keep.insert(kind, keep),
                None => retention.keep.remove(&kind),
            };
        }
        Ok(retention)
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .map(|k| match self.keep(*k) {
                Some(d) if d.as_secs() % 86_400 == 0 => format!("{k}={}d", d.as_secs() / 86_400),
                Some(d) => format!("{k}={}s", d.as_secs()),
                None => format!("{k}=forever"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_keep(text: &str) -> Result<Option<Duration>, RetentionError> {
    if text.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let bad = || RetentionError::Duration(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .filter(|secs| *secs > 0)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(bad)
}

impl Retention {
    /// Every kind kept forever (nothing is ever dropped).
    pub fn forever() -> Self {
        Self {
            keep: BTreeMap::new(),
        }
    }

    pub fn keep(&self, kind: Kind) -> Option<Duration> {
        self.keep.get(&kind).copied()
    }

    /// Rows of `kind` decided before this instant are past retention at `now`.
    pub fn cutoff(&self, kind: Kind, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let keep = TimeDelta::from_std(self.keep(kind)?).ok()?;
        now.checked_sub_signed(keep)
    }
}

/// The day partitions known to exist, so a batch pays for DDL only on a new day.
#[derive(Debug, Default)]
pub struct Partitions {
    known: Mutex<HashSet<(Kind, NaiveDate)>>,
}

impl Partitions {
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<(Kind, NaiveDate)>> {
        // A panic while holding it cannot leave the set wrong: at worst a day is asked again.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates the day partitions of `days` that do not exist yet (one transaction, serialised
    /// against other archivers); returns the names created.
    pub async fn ensure(
        &self,
        pg: &PgPool,
        days: impl IntoIterator<Item = (Kind, NaiveDate)>,
    ) -> Result<Vec<String>, ArchiverError> {
        let missing: Vec<(Kind, NaiveDate)> = {
            let known = self.known();
            let mut missing: Vec<_> = days
                .into_iter()
                .filter(|d| !known.contains(d))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            missing.sort();
            missing
        };
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = pg.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK)
            .execute(&mut *tx)
            .await?;
        let mut created = Vec::new();
        for (kind, day) in &missing {
            let new: bool = sqlx::query_scalar("SELECT sms_archive_ensure_day($1, $2)")
                .bind(kind.as_str())
                .bind(day)
                .fetch_one(&mut *tx)
                .await?;
            if new {
                created.push(kind.partition(*day));
            }
        }
        tx.commit().await?;
        self.known().extend(missing);
        Ok(created)
    }

    /// Forgets what is known (after partitions were dropped, here or by another process).
    pub fn forget(&self) {
        self.known().clear();
    }
}

/// What one maintenance step did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

/// One maintenance step at `now`: creates today's and the next [`DAYS_AHEAD`] days'
/// partitions of every kind, and drops every day partition whose rows are all past their
/// kind's retention (the day ends at or before the cutoff), recording what is no longer held.
#[tracing::instrument(skip_all, fields(%now), err)]
pub async fn maintain(
    pg: &PgPool,
    partitions: &Partitions,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Maintenance, ArchiverError> {
    let today = now.date_naive();
    let ahead =
        (0..=DAYS_AHEAD).filter_map(|d| today.checked_add_days(chrono::Days::new(d.into())));
    let days: Vec<(Kind, NaiveDate)> = Kind::ALL
        .iter()
        .flat_map(|k| ahead.clone().map(move |d| (*k, d)))
        .collect();
    let created = partitions.ensure(pg, days).await?;

    let mut dropped = Vec::new();
    let mut tx = pg.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DDL_LOCK)
        .execute(&mut *tx)
        .await?;
    for kind in Kind::ALL {
        let Some(cutoff) = retention.cutoff(kind, now) else {
            continue;
        };
        let children: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1) ORDER BY 1",
        )
        .bind(kind.parent())
        .fetch_all(&mut *tx)
        .await?;
        let mut retained_from = None;
        for child in children {
            let Some(day) = day_of(kind, &child) else {
                continue;
            };
            let Some(end) = day
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
            else {
                continue;
            };
            if end > cutoff {
                continue;
            }
            let drop = format!("DROP TABLE \"{}\"", child.replace('"', "\"\""));
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *tx)
                .await?;
            retained_from = retained_from.max(Some(end));
            dropped.push((kind, child));
        }
        if let Some(from) = retained_from {
            sqlx::query(
                "INSERT INTO sms_retention (kind, retained_from) VALUES ($1, $2) \
                 ON CONFLICT (kind) DO UPDATE SET \
                 retained_from = GREATEST(sms_retention.retained_from, EXCLUDED.retained_from), \
                 dropped_at = now()",
            )
            .bind(kind.as_str())
            .bind(from)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if !dropped.is_empty() {
        partitions.forget();
        for (kind, _) in &dropped {
            metrics::counter!(m::PARTITIONS_DROPPED, "kind" => kind.as_str()).increment(1);
        }
        tracing::info!(dropped = ?dropped, "archive partitions past retention dropped");
    }
    let dropped = dropped.into_iter().map(|(_, name)| name).collect();
    Ok(Maintenance { created, dropped })
}

/// The day a partition named `<parent>_YYYYMMDD` holds.
fn day_of(kind: Kind, child: &str) -> Option<NaiveDate> {
    let suffix = child.strip_prefix(kind.parent())?.strip_prefix('_')?;
    NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()
}

/// Per kind, the instant before which the archive no longer holds rows (dropped by retention);
/// absent for a kind nothing was ever dropped of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetainedFrom(pub BTreeMap<Kind, DateTime<Utc>>);

impl RetainedFrom {
    pub async fn load(pg: &PgPool) -> Result<Self, ArchiverError> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT kind, retained_from FROM sms_retention")
                .fetch_all(pg)
                .await?;
        Ok(Self(
            rows.into_iter()
                .filter_map(|(k, at)| Kind::parse(&k).map(|k| (k, at)))
                .collect(),
        ))
    }

    /// The kinds (of `kinds`) whose dropped range overlaps a read from `since_us` (`None`: from
    /// the beginning), with where they are held from: what such a read cannot see.
    pub fn gaps(&self, kinds: &[Kind], since_us: Option<i64>) -> Vec<(Kind, DateTime<Utc>)> {
        let since = since_us.and_then(DateTime::from_timestamp_micros);
        self.0
            .iter()
            .filter(|(k, from)| kinds.contains(k) && since.is_none_or(|s| s < **from))
            .map(|(k, from)| (*k, *from))
            .collect()
    }

    /// Where an audit asked to start at `since_us` can judge exactly: a decision's quota
    /// history is the accepted requests of the longest window (`lookback`) before it, so once
    /// accepted days were dropped, judging starts `lookback` after the first one still held.
    /// Events before that are loaded as history, not judged.
    pub fn judged_from(&self, since_us: Option<i64>, lookback: Duration) -> Option<i64> {
        let held = self.0.get(&Kind::Accepted).map(|from| {
            from.timestamp_micros()
                .saturating_add(i64::try_from(lookback.as_micros()).unwrap_or(i64::MAX))
        });
        match (since_us, held) {
            (Some(since), Some(held)) => Some(since.max(held)),
            (since, held) => since.or(held),
        }
    }

    /// `gaps` as JSON: `[{"kind", "before"}]`, what a response reaching into them lacks.
    pub fn not_held(gaps: &[(Kind, DateTime<Utc>)]) -> Vec<NotHeld> {
        gaps.iter()
            .map(|(kind, from)| NotHeld {
                kind: *kind,
                before: from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .collect()
    }

    /// `retained_from` as JSON: per kind ever dropped, RFC 3339.
    pub fn to_json(&self) -> BTreeMap<Kind, String> {
        self.0
            .iter()
            .map(|(k, at)| (*k, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .collect()
    }

    /// A one-line notice of `gaps`, e.g. `accepted before 2026-11-02T00:00:00Z`.
    pub fn describe(gaps: &[(Kind, DateTime<Utc>)]) -> String {
        gaps.iter()
            .map(|(k, from)| format!("{k} before {}", from.format("%Y-%m-%dT%H:%M:%SZ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A range a response reaches into but the archive no longer holds: `kind` before `before`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NotHeld {
    pub kind: Kind,
    #[schema(format = DateTime)]
    pub before: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_kinds_and_durations() {
        let r: Retention = "accepted=7d, rejected=12h,blocked=forever".parse().unwrap();
        assert_eq!(
            r.keep(Kind::Accepted),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            r.keep(Kind::Rejected),
            Some(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(r.keep(Kind::Blocked), None);
        // Not named: the default.
        assert_eq!(
            r.keep(Kind::Delivery),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            Retention::default().to_string(),
            "accepted=30d,rejected=90d,blocked=90d,delivery=30d"
        );
        for bad in [
            "accepted",
            "sent=30d",
            "accepted=30",
            "accepted=0d",
            "accepted=3y",
        ] {
            assert!(bad.parse::<Retention>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_day_is_past_retention_only_when_all_of_it_is() {
        let r: Retention = "accepted=1d".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-10T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cutoff = r.cutoff(Kind::Accepted, now).unwrap();
        assert_eq!(cutoff.to_rfc3339(), "2026-12-09T06:00:00+00:00");
        assert_eq!(
            day_of(Kind::Accepted, "sms_events_accepted_20261208"),
            NaiveDate::from_ymd_opt(2026, 12, 8)
        );
        assert_eq!(day_of(Kind::Accepted, "sms_events_rejected_20261208"), None);
        assert_eq!(day_of(Kind::Delivery, "sms_status_2026120"), None);
        assert_eq!(
            Kind::Delivery.partition(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
            "sms_status_20260102"
        );
    }

    #[test]
    fn gaps_are_the_dropped_kinds_a_read_reaches_into() {
        let from = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let held = RetainedFrom(BTreeMap::from([(Kind::Accepted, from)]));
        let all = [Kind::Accepted, Kind::Rejected];
        assert_eq!(held.gaps(&all, None), vec![(Kind::Accepted, from)]);
        assert_eq!(held.gaps(&all, Some(1_700_000_000_000_000)).len(), 1);
        assert!(held.gaps(&all, Some(1_800_000_000_000_000)).is_empty());
        assert!(held.gaps(&[Kind::Rejected], None).is_empty());
        assert_eq!(
            RetainedFrom::describe(&held.gaps(&all, None)),
            "accepted before 2027-01-15T08:00:00Z"
        );
    }
}
