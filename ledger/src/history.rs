//! Volumes: accepted and rejected counts per hour or per day over a range, every bucket present
//! (zeros included), oldest first, with what retention no longer holds.
//!
//! The counts are the archive's merged with the stream's not-yet-archived tail, so traffic of
//! the last minutes shows at once instead of after the archiver's next run. Each event counts
//! once: the tail is read first, then one SQL statement (one snapshot) counts the archive and
//! those tail entries the snapshot does not hold, matched on the archive's own key (id,
//! outcome, decision time). An entry trimmed from the stream before the read was committed
//! before it (the stream is trimmed only below what the archiver acknowledged, after COMMIT),
//! so the snapshot has it; one archived after the snapshot is counted from the tail.

use std::collections::BTreeMap;

use archiver::{Kind, NotHeld, RetainedFrom};
use chrono::{DateTime, SecondsFormat, Utc};
use eventlog::{Decoded, RawEntry, parse_entries};
use fred::clients::Pool;
use fred::interfaces::StreamsInterface;
use fred::types::Value;
use limiter::Layout;
use limiter::delivery::Record;
use serde::Serialize;
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use crate::audit::STREAM_TIME_TOLERANCE_MS;
use crate::error::LedgerError;
use crate::replay::STREAM_PAGE;

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
// archive scan a single grouped pass over the BRIN-indexed range. The tail ($5–$7) is what was
// on the streams a moment ago; in this one statement's snapshot, those entries the archive
// already holds are dropped from it (by the primary key), so nothing counts twice.
const HISTORY: &str = r#"
WITH tail AS (
    SELECT * FROM UNNEST($5::uuid[], $6::text[], $7::timestamptz[]) AS t(id, outcome, at)
),
unarchived AS (
    SELECT t.at, t.outcome FROM tail t
    WHERE NOT EXISTS (
        SELECT 1 FROM sms_events e WHERE e.id = t.id AND e.outcome = t.outcome AND e.at = t.at
    )
),
counts AS (
    SELECT date_trunc($1, at, 'UTC') AS start,
           count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
           count(*) FILTER (WHERE outcome = 'rejected') AS rejected
    FROM (
        SELECT at, outcome FROM sms_events WHERE at >= $2 AND at < $3
        UNION ALL
        SELECT at, outcome FROM unarchived
    ) AS events
    GROUP BY 1
)
SELECT s.start, coalesce(c.accepted, 0) AS accepted, coalesce(c.rejected, 0) AS rejected
-- Buckets stop at now: the future has no volumes to show, not zero ones.
FROM generate_series(date_trunc($1, $2, 'UTC'), least($3, now()) - interval '1 microsecond', $4::interval) AS s(start)
LEFT JOIN counts c ON c.start = s.start
ORDER BY s.start
"#;

/// The decisions of `[since, until)` still on the streams, archived or not, as the archive's
/// key: (id, outcome, decision time).
#[derive(Debug, Default)]
pub struct Tail {
    pub ids: Vec<Uuid>,
    pub outcomes: Vec<&'static str>,
    pub at: Vec<DateTime<Utc>>,
}

impl Tail {
    /// Reads every partition's stream over the entry ids that can hold decisions of the range
    /// (decision time and entry time differ by under [`STREAM_TIME_TOLERANCE_MS`]), in pages.
    pub async fn read(
        redis: &Pool,
        layout: &Layout,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Self, LedgerError> {
        let (since_us, until_us) = (since.timestamp_micros(), until.timestamp_micros());
        let first_ms = (since.timestamp_millis() - STREAM_TIME_TOLERANCE_MS).max(0);
        let end_ms = until.timestamp_millis() + STREAM_TIME_TOLERANCE_MS;
        let mut tail = Self::default();
        // Entry ids are milliseconds since 1970: a range that ends before that holds none.
        if end_ms < 0 || until <= since {
            return Ok(tail);
        }
        let end = end_ms.to_string();
        for p in 0..layout.partitions() {
            let stream = layout.stream(p);
            let mut start = first_ms.to_string();
            loop {
                let reply: Value = redis
                    .next()
                    .xrange(
                        &stream,
                        start.as_str(),
                        end.as_str(),
                        Some(STREAM_PAGE as u64),
                    )
                    .await?;
                let entries: Vec<RawEntry> = parse_entries(reply)?;
                let Some(last) = entries.last().map(|e| e.id) else {
                    break;
                };
                let full = entries.len() == STREAM_PAGE;
                for raw in entries {
                    let Decoded::Event(entry) = Decoded::new(p, raw, 1) else {
                        // Undecodable entries are the dead-letter stream's; history counts events.
                        continue;
                    };
                    let Record::Decision(event) = entry.record else {
                        continue;
                    };
                    if event.at_us < since_us || event.at_us >= until_us {
                        continue;
                    }
                    let Some(at) = DateTime::from_timestamp_micros(event.at_us) else {
                        continue;
                    };
                    tail.ids.push(event.id);
                    tail.outcomes.push(event.outcome.as_str());
                    tail.at.push(at);
                }
                if !full {
                    break;
                }
                start = format!("({last}");
            }
        }
        Ok(tail)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Counts per `bucket` of the events decided in `[since, until)`: the archive and the
/// streams' not-yet-archived tail, each event once.
pub async fn history(
    pg: &PgPool,
    redis: &Pool,
    layout: &Layout,
    bucket: Bucket,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<History, LedgerError> {
    let tail = Tail::read(redis, layout, since, until).await?;
    counted(pg, &tail, bucket, since, until).await
}

/// [`history`] with the tail already read: the archive counted with `tail` in one snapshot.
pub async fn counted(
    pg: &PgPool,
    tail: &Tail,
    bucket: Bucket,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<History, LedgerError> {
    let step = format!("{} seconds", bucket.seconds());
    let rows = sqlx::query(HISTORY)
        .bind(bucket.as_str())
        .bind(since)
        .bind(until)
        .bind(step)
        .bind(&tail.ids)
        .bind(&tail.outcomes)
        .bind(&tail.at)
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
