//! Queries over the projections: what the API serves. Each query reads every partition and
//! sums (counters) or merges (lists) them, so any number of API replicas share one state.

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::{HashesInterface, SortedSetsInterface};
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind};
use fred::types::{Limit, MultipleKeys};
use futures::future::try_join_all;
use limiter::{Event, Layout, Policy, codec, layout::client_key};

use crate::keys::{PADDED_LEN, PartitionKeys, StreamId, TOP_MINUTES, day_of, minute_of, second_of};

/// Accepted and rejected events in some span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
    }
}

/// `last_minute`: the 60 whole seconds up to and including the current one; `last_hour`: the
/// 60 minute buckets up to and including the current one; `today`: the current UTC day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub last_minute: Counts,
    pub last_hour: Counts,
    pub today: Counts,
}

/// Counts per bucket for buckets `first..=last` of one bucket hash, summed over partitions.
async fn buckets(
    redis: &Client,
    hashes: &[String],
    first: i64,
    last: i64,
) -> Result<Vec<Counts>, fred::error::Error> {
    if last < first {
        return Ok(Vec::new());
    }
    let fields: Vec<String> = (first..=last)
        .flat_map(|b| [format!("{b}a"), format!("{b}r")])
        .collect();
    let per_partition = try_join_all(hashes.iter().map(|hash| {
        let fields = fields.clone();
        async move {
            redis
                .hmget::<Vec<Option<u64>>, _, _>(hash.as_str(), fields)
                .await
        }
    }))
    .await?;
    let mut sums = vec![Counts::default(); fields.len() / 2];
    for values in per_partition {
        for (i, pair) in values.chunks(2).enumerate() {
            if let Some(sum) = sums.get_mut(i) {
                sum.accepted += pair.first().copied().flatten().unwrap_or(0);
                sum.rejected += pair.get(1).copied().flatten().unwrap_or(0);
            }
        }
    }
    Ok(sums)
}

fn total(counts: &[Counts]) -> Counts {
    counts.iter().fold(Counts::default(), |mut sum, c| {
        sum += *c;
        sum
    })
}

pub async fn totals(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
) -> Result<Totals, fred::error::Error> {
    let parts = PartitionKeys::all(layout);
    let seconds: Vec<String> = parts.iter().map(|k| k.seconds.clone()).collect();
    let minutes: Vec<String> = parts.iter().map(|k| k.minutes.clone()).collect();
    let days: Vec<String> = parts.iter().map(|k| k.days.clone()).collect();
    let (s, m, d) = (second_of(now_us), minute_of(now_us), day_of(now_us));
    let (last_minute, last_hour, today) = futures::try_join!(
        buckets(redis, &seconds, s - 59, s),
        buckets(redis, &minutes, m - 59, m),
        buckets(redis, &days, d, d),
    )?;
    Ok(Totals {
        last_minute: total(&last_minute),
        last_hour: total(&last_hour),
        today: total(&today),
    })
}

/// `(minute number, counts)` for the `minutes` minutes up to and including the current one,
/// oldest first, zeros included.
pub async fn per_minute(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
    minutes: i64,
) -> Result<Vec<(i64, Counts)>, fred::error::Error> {
    let hashes = PartitionKeys::all(layout).into_iter().map(|k| k.minutes);
    series(redis, hashes, minute_of(now_us), minutes).await
}

/// `(day number, counts)` for the `days` UTC days up to and including today, oldest first.
pub async fn per_day(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
    days: i64,
) -> Result<Vec<(i64, Counts)>, fred::error::Error> {
    let hashes = PartitionKeys::all(layout).into_iter().map(|k| k.days);
    series(redis, hashes, day_of(now_us), days).await
}

/// The `count` buckets up to and including `last`, summed over the partitions' `hashes`.
async fn series(
    redis: &Client,
    hashes: impl Iterator<Item = String>,
    last: i64,
    count: i64,
) -> Result<Vec<(i64, Counts)>, fred::error::Error> {
    let hashes: Vec<String> = hashes.collect();
    let first = last - count + 1;
    let counts = buckets(redis, &hashes, first, last).await?;
    Ok((first..=last).zip(counts).collect())
}

/// The most rejected clients and destination numbers over the last [`TOP_MINUTES`] minutes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Top {
    /// `(ip, to, rejections)`, most first, ties by client.
    pub clients: Vec<(IpAddr, String, u64)>,
    /// `(to, rejections)`, most first, ties by number.
    pub numbers: Vec<(String, u64)>,
}

pub async fn top(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
    n: usize,
) -> Result<Top, fred::error::Error> {
    let last = minute_of(now_us);
    let minutes: Vec<i64> = (last - TOP_MINUTES + 1..=last).collect();
    let parts = PartitionKeys::all(layout);
    // A client lives in one partition, a number may appear in all: merging per-partition
    // unions exactly (rather than per-partition top n) keeps both lists exact.
    let unions = try_join_all(parts.iter().map(|k| {
        let clients: Vec<String> = minutes.iter().map(|m| k.top_clients(*m)).collect();
        let numbers: Vec<String> = minutes.iter().map(|m| k.top_numbers(*m)).collect();
        async move {
            let c: Vec<(String, f64)> = redis
                .zunion(MultipleKeys::from(clients), None, None, true)
                .await?;
            let n: Vec<(String, f64)> = redis
                .zunion(MultipleKeys::from(numbers), None, None, true)
                .await?;
            Ok::<_, fred::error::Error>((c, n))
        }
    }))
    .await?;
    let mut clients: HashMap<String, u64> = HashMap::new();
    let mut numbers: HashMap<String, u64> = HashMap::new();
    for (c, num) in unions {
        for (member, score) in c {
            *clients.entry(member).or_default() += score as u64;
        }
        for (member, score) in num {
            *numbers.entry(member).or_default() += score as u64;
        }
    }
    let clients = ranked(clients, n)
        .into_iter()
        .filter_map(|(key, count)| {
            let (ip, to) = key.split_once('|')?;
            Some((ip.parse().ok()?, to.to_owned(), count))
        })
        .collect();
    Ok(Top {
        clients,
        numbers: ranked(numbers, n),
    })
}

fn ranked(counts: HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c > 0).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

/// Which capped list of events to page through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventList {
    All,
    Accepted,
    Violations,
}

/// A page of events, newest first, and the cursor of the next page when there is one.
#[derive(Clone, Debug, Default)]
pub struct EventPage {
    pub events: Vec<(StreamId, Event)>,
    pub next_before: Option<StreamId>,
}

/// The newest `limit` events of `list` strictly older than `before`, merged over partitions
/// by stream id.
pub async fn events(
    redis: &Client,
    layout: &Layout,
    list: EventList,
    before: Option<StreamId>,
    limit: usize,
) -> Result<EventPage, fred::error::Error> {
    let max = match before {
        Some(id) => ZRange {
            kind: ZRangeKind::Exclusive,
            range: ZRangeBound::Lex(id.padded()),
        },
        None => ZRange {
            kind: ZRangeKind::Inclusive,
            range: ZRangeBound::InfiniteLex,
        },
    };
    let min = ZRange {
        kind: ZRangeKind::Inclusive,
        range: ZRangeBound::NegInfinityLex,
    };
    let parts = PartitionKeys::all(layout);
    let fetch = limit + 1;
    let pages = try_join_all(parts.iter().map(|k| {
        let key = match list {
            EventList::All => k.recent.clone(),
            EventList::Accepted => k.accepted.clone(),
            EventList::Violations => k.violations.clone(),
        };
        let (max, min) = (max.clone(), min.clone());
        async move {
            redis
                .zrevrangebylex::<Vec<Bytes>, _, _, _>(
                    key,
                    max,
                    min,
                    Some(Limit::from((0, fetch as i64))),
                )
                .await
        }
    }))
    .await?;
    // Partitions are separate streams, so two of them can hold the same id; order ties by
    // partition, and never cut a page inside a tie, or a `before` cursor would skip the rest.
    let mut all: Vec<(StreamId, usize, Event)> = pages
        .into_iter()
        .enumerate()
        .flat_map(|(p, page)| page.into_iter().map(move |member| (p, member)))
        .filter_map(|(p, member)| {
            let id = StreamId::from_padded(&member)?;
            // The projector decoded this event before storing it; a member that no longer
            // decodes (a schema this build does not know) is skipped rather than failing the page.
            let event = codec::decode(member.get(PADDED_LEN..)?).ok()?;
            Some((id, p, event))
        })
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut next_before = None;
    if all.len() > limit {
        let mut cut = limit;
        while cut > 0 && all[cut - 1].0 == all[cut].0 {
            cut -= 1;
        }
        if cut == 0 {
            // The whole page is one tie (more partitions share an id than `limit`): return the
            // tie whole rather than an empty page.
            cut = all.iter().take_while(|e| e.0 == all[0].0).count();
        }
        all.truncate(cut);
        next_before = all.last().map(|e| e.0);
    }
    Ok(EventPage {
        events: all.into_iter().map(|(id, _, e)| (id, e)).collect(),
        next_before,
    })
}

/// One window of a client's quota as of now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowUsage {
    pub name: String,
    pub limit: u32,
    pub used: u32,
    pub remaining: u32,
    /// Whole seconds until the oldest counted request leaves the window, 0 when none counts.
    pub frees_in: u64,
}

/// A client's usage, read from the limiter's own quota set: the source of truth, not a copy.
pub async fn client_usage(
    redis: &Client,
    layout: &Layout,
    policy: &Policy,
    ip: &IpAddr,
    to: &str,
    now_us: i64,
) -> Result<Vec<WindowUsage>, fred::error::Error> {
    let client = client_key(ip, to);
    let key = layout.quota(layout.partition_of(&client), &client);
    // Members are bytes (a timed event id, see decide.lua); only the scores are read here.
    let accepted: Vec<(bytes::Bytes, f64)> =
        redis.zrange(key, 0, -1, None, false, None, true).await?;
    let mut times: Vec<i64> = accepted.into_iter().map(|(_, t)| t as i64).collect();
    times.sort_unstable();
    Ok(policy
        .windows()
        .iter()
        .map(|w| {
            let d = w.duration_micros();
            // A request at t counts while t > now - d, as in the decision script.
            let counted: Vec<i64> = times.iter().copied().filter(|t| *t > now_us - d).collect();
            let used = u32::try_from(counted.len()).unwrap_or(u32::MAX);
            WindowUsage {
                name: w.name.clone(),
                limit: w.limit,
                used,
                remaining: w.limit.saturating_sub(used),
                frees_in: counted.first().map_or(0, |oldest| {
                    limiter::model::whole_seconds_up(oldest + d - now_us)
                }),
            }
        })
        .collect())
}

/// `(minute number, count per delivery status)` for the `minutes` minutes up to and including
/// the current one, oldest first, summed over partitions; statuses in [`DeliveryStatus::ALL`]
/// order.
pub async fn delivery_per_minute(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
    minutes: i64,
) -> Result<Vec<(i64, [u64; 7])>, fred::error::Error> {
    use limiter::delivery::DeliveryStatus;
    let last = minute_of(now_us);
    let first = last - minutes + 1;
    if minutes < 1 {
        return Ok(Vec::new());
    }
    let fields: Vec<String> = (first..=last)
        .flat_map(|m| DeliveryStatus::ALL.map(|s| format!("{m}:{}", s.as_str())))
        .collect();
    let per_partition = minute_fields(redis, layout, &fields).await?;
    let mut out: Vec<(i64, [u64; 7])> = (first..=last).map(|m| (m, [0; 7])).collect();
    for values in per_partition {
        for (i, value) in values.into_iter().enumerate() {
            if let Some(slot) = out.get_mut(i / 7) {
                slot.1[i % 7] += value.unwrap_or(0);
            }
        }
    }
    Ok(out)
}

/// `fields` of every partition's minutes hash, read concurrently: one vector per partition.
async fn minute_fields(
    redis: &Client,
    layout: &Layout,
    fields: &[String],
) -> Result<Vec<Vec<Option<u64>>>, fred::error::Error> {
    try_join_all(
        PartitionKeys::all(layout)
            .into_iter()
            .map(|k| redis.hmget::<Vec<Option<u64>>, _, _>(k.minutes, fields.to_vec())),
    )
    .await
}

/// The provider-latency histogram (counts per bucket of
/// [`limiter::delivery::LATENCY_BOUNDS_MS`], the slowest last) of the `minutes` minutes up to and
/// including the current one, summed over partitions.
pub async fn delivery_latency(
    redis: &Client,
    layout: &Layout,
    now_us: i64,
    minutes: i64,
) -> Result<Vec<u64>, fred::error::Error> {
    let buckets = limiter::delivery::LATENCY_BOUNDS_MS.len() + 1;
    let last = minute_of(now_us);
    let fields: Vec<String> = (last - minutes.max(1) + 1..=last)
        .flat_map(|m| (0..buckets).map(move |b| format!("{m}:l{b}")))
        .collect();
    let per_partition = minute_fields(redis, layout, &fields).await?;
    let mut histogram = vec![0; buckets];
    for values in per_partition {
        for (i, value) in values.into_iter().enumerate() {
            histogram[i % buckets] += value.unwrap_or(0);
        }
    }
    Ok(histogram)
}

/// What the dispatcher still has to do: entries its consumer group has not settled (decisions
/// not yet taken on), the age of the oldest, and messages on the retry schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryBacklog {
    pub entries: u64,
    pub oldest_seconds: f64,
    pub scheduled: u64,
}

/// Measures [`DeliveryBacklog`] on every partition (read-only: the engine's measurement script
/// without trimming, and ZCARD of the schedule).
pub async fn delivery_backlog(
    redis: &Client,
    layout: &Layout,
) -> Result<DeliveryBacklog, fred::error::Error> {
    let store = limiter::delivery::DeliveryStore::new(layout.clone());
    let mut backlog = DeliveryBacklog::default();
    for partition in 0..layout.partitions() {
        let stream = layout.stream(partition);
        let group = eventlog::Group {
            stream: &stream,
            group: DISPATCHER_GROUP,
        };
        let state = group.maintain(redis, false).await.map_err(|e| match e {
            eventlog::LogError::Redis(e) => e,
            other => fred::error::Error::new(fred::error::ErrorKind::Unknown, other.to_string()),
        })?;
        backlog.entries += state.lag();
        backlog.oldest_seconds = backlog.oldest_seconds.max(state.oldest_age.as_secs_f64());
        backlog.scheduled += redis.zcard::<u64, _>(store.schedule_key(partition)).await?;
    }
    Ok(backlog)
}

/// The dispatcher's consumer group (the `dispatcher` crate's `GROUP`; the projector does not
/// depend on the dispatcher).
const DISPATCHER_GROUP: &str = "dispatcher";
