//! Volumes from the archive: accepted and rejected counts per hour or per day over a range,
//! every bucket present (zeros included), oldest first, with what retention no longer holds.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row as _};

use crate::error::ArchiverError;
use crate::retention::{Kind, NotHeld, RetainedFrom};

/// Bucket width of [`history`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HistoryBucketSize)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

/// `{"bucket", "buckets": [{"start", "accepted", "rejected"}]}` of `GET /api/history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct History {
    pub bucket: Bucket,
    pub buckets: Vec<BucketCounts>,
    /// Per kind whose old partitions retention dropped: the archive holds it from then on
    /// (`SMSGATE_RETENTION`); buckets before it count only what is still held.
    #[schema(value_type = BTreeMap<String, String>)]
    pub retained_from: BTreeMap<Kind, String>,
    /// The kinds this range reaches into but are no longer held, and from when they are.
    pub not_held: Vec<NotHeld>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = HistoryBucket)]
pub struct BucketCounts {
    /// Start of the bucket, RFC 3339 UTC in whole seconds.
    #[schema(format = DateTime)]
    pub start: String,
    pub accepted: i64,
    pub rejected: i64,
}

// Buckets are UTC (`date_trunc(…, 'UTC')`) and the series steps in fixed hours, so neither
// depends on the session's time zone. Counting first and joining the series after keeps the
// scan a single grouped pass over the BRIN-indexed range.
const HISTORY: &str = r#"
WITH counts AS (
    SELECT date_trunc($1, at, 'UTC') AS start,
           count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
           count(*) FILTER (WHERE outcome = 'rejected') AS rejected
    FROM sms_events
    WHERE at >= $2 AND at < $3
    GROUP BY 1
)
SELECT s.start, coalesce(c.accepted, 0) AS accepted, coalesce(c.rejected, 0) AS rejected
-- Buckets stop at now: the future has no volumes to show, not zero ones.
FROM generate_series(date_trunc($1, $2, 'UTC'), least($3, now()) - interval '1 microsecond', $4::interval) AS s(start)
LEFT JOIN counts c ON c.start = s.start
ORDER BY s.start
"#;

/// Counts per `bucket` of the events decided in `[since, until)`.
pub async fn history(
    pg: &PgPool,
    bucket: Bucket,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<History, ArchiverError> {
    let step = format!("{} seconds", bucket.seconds());
    let rows = sqlx::query(HISTORY)
        .bind(bucket.as_str())
        .bind(since)
        .bind(until)
        .bind(step)
        .fetch_all(pg)
        .await?;
    let buckets = rows
        .iter()
        .map(|row| {
            Ok(BucketCounts {
                start: row
                    .try_get::<DateTime<Utc>, _>(0)?
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                accepted: row.try_get(1)?,
                rejected: row.try_get(2)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let retained = RetainedFrom::load(pg).await?;
    let gaps = retained.gaps(
        &[Kind::Accepted, Kind::Rejected],
        Some(since.timestamp_micros()),
    );
    Ok(History {
        bucket,
        buckets,
        retained_from: retained.to_json(),
        not_held: RetainedFrom::not_held(&gaps),
    })
}
