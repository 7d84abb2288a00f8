//! The limiter's Redis suites on `testkit`: a pool on `REDIS_URL`, requests, the stream read
//! back in the shape these suites compare, and namespace clean-up.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use fred::clients::Client;
use limiter::{Event, Layout, SmsRequest};

pub use testkit::{partitions, redis};

pub fn request(ip: &str, to: &'static str) -> SmsRequest<'static> {
    SmsRequest {
        ip: ip.parse().unwrap(),
        to,
        from: None,
        message: "hello",
        segments: 1,
    }
}

/// Every event on every partition's stream as `(stream id, event)`, in stream order per
/// partition.
pub async fn stream_events(redis: &Client, layout: &Layout) -> Vec<(String, Event)> {
    testkit::stream_events(redis, layout)
        .await
        .into_iter()
        .map(|(_, id, event)| (id, event))
        .collect()
}

/// Deletes the namespace's keys, found with KEYS on every primary of a cluster.
pub async fn drop_namespace(redis: &Client, layout: &Layout) {
    testkit::drop_namespace(redis, layout.namespace()).await;
}
