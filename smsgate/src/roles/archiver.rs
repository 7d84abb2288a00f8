//! The archiver role: stream → Postgres (see the `archiver` crate).
//!
//! In `serve` and `archiver` it runs `Archiver::run_until_stopped` in the background; the
//! database is created and migrated in the background too, so a Postgres that is down at start
//! delays the archive (events wait in Redis) but never the other roles. `archiver --once`
//! drains everything there is and runs the retention step (`SMSGATE_RETENTION`: partitions
//! ahead created, those past retention dropped), then exits, non-zero if it could not.
//!
//! Two environment variables exist for operations and tests rather than everyday use:
//! - `SMSGATE_ARCHIVE_CLAIM_IDLE` (default `60s`): how long an entry must sit pending on
//!   another consumer before it is claimed; `0` lets `--once` take over a crashed run at once.
//! - `SMSGATE_FAULT_PAUSE` (`after-read:<ms>` or `after-insert:<ms>`): fault injection; every
//!   batch sleeps at that point, so crash tests can SIGKILL the process exactly there.

use std::time::Duration;

use anyhow::Context;
use archiver::{Archiver, ArchiverConfig, FaultPause};
use sqlx::postgres::PgPoolOptions;

use super::{RoleContext, RoleParts, consumer_name, release_consumer_name};
use crate::cli::Settings;

fn config(settings: &Settings, consumer: &str) -> anyhow::Result<ArchiverConfig> {
    let mut config = ArchiverConfig {
        interval: settings.archive_interval,
        consumer: consumer.to_owned(),
        retention: settings.retention.clone(),
        ..ArchiverConfig::default()
    };
    if let Ok(text) = std::env::var("SMSGATE_ARCHIVE_CLAIM_IDLE") {
        config.claim_idle = limiter::policy::parse_duration(&text)
            .or_else(|| text.parse().ok().map(Duration::from_secs))
            .with_context(|| format!("SMSGATE_ARCHIVE_CLAIM_IDLE: `{text}` is not a duration"))?;
    }
    if let Ok(text) = std::env::var("SMSGATE_FAULT_PAUSE") {
        let pause = FaultPause::parse(&text).with_context(|| {
            format!("SMSGATE_FAULT_PAUSE: `{text}` is not after-read:<ms> or after-insert:<ms>")
        })?;
        tracing::warn!(?pause, "fault injection enabled");
        config.pause = Some(pause);
    }
    Ok(config)
}

pub async fn start(ctx: &RoleContext) -> anyhow::Result<RoleParts> {
    // Checked now so a bad setting stops the start; the real name comes from Redis below.
    config(&ctx.settings, "")?;
    archiver::metrics::register();
    let url = ctx.settings.database_url.clone();
    // Lazy: `/readyz` and the archive routes see Postgres come and go; nothing blocks on it.
    let pg = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&url)
        .context("invalid DATABASE_URL")?;
    let (redis, worker_pg, layout) = (ctx.redis.clone(), pg.clone(), ctx.settings.layout());
    let settings = ctx.settings.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        let Some(name) = consumer_name(&redis, &layout, archiver::GROUP, &shutdown).await else {
            return;
        };
        let mut wait = Duration::from_millis(500);
        loop {
            match archiver::connect_postgres(&url).await {
                Ok(migrated) => {
                    migrated.close().await;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "archive database not ready");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
        match config(&settings, &name.name) {
            Ok(config) => {
                let worker = Archiver::new(redis.clone(), worker_pg, layout, config);
                if let Err(e) = worker.run_until_stopped(shutdown).await {
                    tracing::error!(error = %e, "archiver stopped");
                }
            }
            Err(e) => tracing::error!(error = %e, "archiver not started"),
        }
        release_consumer_name(&redis, &name).await;
    });
    Ok(RoleParts {
        operator_routes: archiver::router(archiver::ArchiveApi {
            pg: pg.clone(),
            redis: ctx.redis.clone(),
            layout: ctx.settings.layout(),
        }),
        postgres: Some(pg),
    })
}

/// `smsgate archiver --once`.
pub async fn run_once(settings: &Settings) -> anyhow::Result<()> {
    config(settings, "")?;
    let redis = limiter::connection::connect(&settings.redis_url, 2, Duration::from_secs(5))
        .await
        .with_context(|| format!("invalid REDIS_URL {}", settings.redis_url))?;
    anyhow::ensure!(
        limiter::connection::is_up(&redis),
        "redis is not reachable at {}",
        settings.redis_url
    );
    let pg = archiver::connect_postgres(&settings.database_url)
        .await
        .context("connecting to the archive database")?;
    let layout = settings.layout();
    let name = consumer_name(&redis, &layout, archiver::GROUP, &Default::default())
        .await
        .context("acquiring a consumer name")?;
    let worker = Archiver::new(redis.clone(), pg, layout, config(settings, &name.name)?);
    let report = worker.drain().await.context("archiving");
    release_consumer_name(&redis, &name).await;
    let report = report?;
    let maintenance = worker
        .maintain(chrono::Utc::now())
        .await
        .context("the retention step")?;
    if !maintenance.dropped.is_empty() {
        println!(
            "retention ({}): dropped {}",
            settings.retention,
            maintenance.dropped.join(", ")
        );
    }
    tracing::info!(?report, "archive drained");
    println!(
        "archived {} new events from {} entries in {} batches ({} dead-lettered)",
        report.inserted, report.entries, report.batches, report.dead_lettered
    );
    Ok(())
}
