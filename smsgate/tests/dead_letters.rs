//! One dead-letter schema: the projector and the archiver each set aside the same undecodable
//! entry, and one decoder (`eventlog::read_dead_letters`) reads both letters, payload included.

#![allow(clippy::unwrap_used)]

mod archiver_support;

use archiver::{Archiver, ArchiverConfig};
use archiver_support::Env;
use bytes::Bytes;
use fred::interfaces::StreamsInterface;
use limiter::Policy;
use projector::{Projector, ProjectorConfig};

#[tokio::test]
async fn a_dead_letter_of_each_role_decodes_with_the_same_code_payload_included() {
    let env = Env::new(1).await;
    env.decide(5).await;
    let garbage = Bytes::from_static(b"\xc1 neither role can decode this");
    let id: String = env
        .redis
        .next()
        .xadd(
            env.layout.stream(0),
            false,
            None,
            "*",
            vec![("e", garbage.clone())],
        )
        .await
        .unwrap();
    env.decide(5).await;

    let projector = Projector::new(
        env.redis.clone(),
        env.layout.clone(),
        Policy::parse("3/1m").unwrap(),
        ProjectorConfig::new("projector-test-0"),
    );
    while projector.try_process_batch().await.unwrap() != projector::Outcome::Idle {}
    let pg = env.pg().await;
    let archiver = Archiver::new(
        env.redis.clone(),
        pg.clone(),
        env.layout.clone(),
        ArchiverConfig {
            consumer: "archiver-test-0".into(),
            ..ArchiverConfig::default()
        },
    );
    let report = archiver.drain().await.unwrap();
    assert_eq!((report.inserted, report.dead_lettered), (10, 1));

    let mut letters = eventlog::read_dead_letters(env.redis.next(), &env.layout, 0)
        .await
        .unwrap();
    letters.sort_by(|a, b| a.1.group.cmp(&b.1.group));
    let groups: Vec<&str> = letters.iter().map(|(_, d)| d.group.as_str()).collect();
    assert_eq!(groups, ["archiver", "projector"]);
    for (_, letter) in &letters {
        assert_eq!(letter.stream_id.to_string(), id);
        assert_eq!(letter.payload, garbage, "{letter:?}");
        assert_eq!(letter.deliveries, 1);
        assert!(letter.reason.starts_with("undecodable"), "{letter:?}");
    }
    assert_eq!(letters[0].1.consumer, "archiver-test-0");
    assert_eq!(letters[1].1.consumer, "projector-test-0");
    pg.close().await;
}
