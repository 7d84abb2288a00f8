//! The projector's `/api/stats` held to a plain count of the decided events.

use limiter::{Event, Outcome};
use serde_json::{Value, json};

/// `minute` of an event: whole minutes since the epoch.
pub fn minute_of(e: &Event) -> i64 {
    e.at_us.div_euclid(60_000_000)
}

/// The totals (today, last hour, last minute) and the last ten minutes of the per-minute
/// series in `stats` equal a count of `events`, at the `now` the stats were taken.
pub fn assert_totals_and_series_equal(stats: &Value, events: &[&Event]) {
    let now_us = chrono::DateTime::parse_from_rfc3339(stats["now"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    let in_minutes = |e: &Event, from: i64, to: i64| (from..=to).contains(&minute_of(e));
    let count = |pred: &dyn Fn(&Event) -> bool| {
        let accepted = events
            .iter()
            .filter(|e| pred(e) && e.outcome == Outcome::Accepted)
            .count();
        let rejected = events
            .iter()
            .filter(|e| pred(e) && e.outcome == Outcome::Rejected)
            .count();
        json!({"accepted": accepted, "rejected": rejected})
    };
    let (sec, min, day) = (
        now_us.div_euclid(1_000_000),
        now_us.div_euclid(60_000_000),
        now_us.div_euclid(86_400_000_000),
    );
    assert_eq!(
        stats["totals"]["today"],
        count(&|e| e.at_us.div_euclid(86_400_000_000) == day)
    );
    assert_eq!(
        stats["totals"]["last_hour"],
        count(&|e| in_minutes(e, min - 59, min))
    );
    assert_eq!(
        stats["totals"]["last_minute"],
        count(&|e| (sec - 59..=sec).contains(&e.at_us.div_euclid(1_000_000)))
    );
    let series: Vec<Value> = (min - 9..=min)
        .map(|m| {
            let c = count(&|e| in_minutes(e, m, m));
            json!({"minute": projector::rfc3339_secs(m * 60), "accepted": c["accepted"], "rejected": c["rejected"]})
        })
        .collect();
    assert_eq!(stats["per_minute"], Value::Array(series));
}

/// Rejections per number in the hour before `stats["now"]`, most first, ties by number.
pub fn rejections_by_number_last_hour(stats: &Value, events: &[&Event]) -> Vec<(String, u64)> {
    let now_us = chrono::DateTime::parse_from_rfc3339(stats["now"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    let min = now_us.div_euclid(60_000_000);
    let mut numbers: std::collections::BTreeMap<String, u64> = Default::default();
    for e in events {
        if e.outcome == Outcome::Rejected && (min - 59..=min).contains(&minute_of(e)) {
            *numbers.entry(e.to.clone()).or_default() += 1;
        }
    }
    let mut numbers: Vec<_> = numbers.into_iter().collect();
    numbers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    numbers
}
