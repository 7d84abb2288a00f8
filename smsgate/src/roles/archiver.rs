//! The archiver role: stream → Postgres (see the `archiver` crate).
//!
//! In `serve` and `archiver` it runs `Archiver::run_until_stopped` in the background; the
//! database is created and migrated in the background too, so a Postgres that is down at start
//! delays the archive (events wait in Redis) but never the other roles. `archiver --once`
//! drains everything there is and runs the retention step (`SMSGATE_RETENTION`: partitions
//! ahead created, those past retention dropped), then exits, non-zero if it could not.
//!
//! How long entries of a dead archiver wait before another claims them is
//! `SMSGATE_ARCHIVE_CLAIM_IDLE` (see `cli`).

use std::time::Duration;

use anyhow::Context;
use archiver::{Archiver, ArchiverConfig};
use sqlx::postgres::PgPoolOptions;

use super::{RoleContext, RoleParts, consumer_name, release_consumer_name};
use crate::cli::Settings;

fn config(settings: &Settings, consumer: &str) -> ArchiverConfig {
    ArchiverConfig {
        interval: settings.archive_interval,
        claim_idle: settings.archive_claim_idle,
        consumer: consumer.to_owned(),
        retention: settings.retention.clone(),
        ..ArchiverConfig::default()
    }
}

pub async fn start(ctx: &RoleContext) -> anyhow::Result<RoleParts> {
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
        let worker = Archiver::new(
            redis.clone(),
            worker_pg,
            layout,
            config(&settings, &name.name),
        );
        if let Err(e) = worker.run_until_stopped(shutdown).await {
            tracing::error!(error = %e, "archiver stopped");
        }
        release_consumer_name(&redis, &name).await;
    });
    Ok(RoleParts {
        // The read side is served where the archive is written, so `/readyz` checks the one pool.
        operator_routes: ledger::router(ledger::LedgerApi {
            pg: pg.clone(),
            redis: ctx.redis.clone(),
            layout: ctx.settings.layout(),
        }),
        postgres: Some(pg),
    })
}

/// `smsgate archiver --once`.
pub async fn run_once(settings: &Settings) -> anyhow::Result<()> {
    let (redis, pg) = crate::app::connect_stores(settings, 2).await?;
    let layout = settings.layout();
    let name = consumer_name(&redis, &layout, archiver::GROUP, &Default::default())
        .await
        .context("acquiring a consumer name")?;
    let worker = Archiver::new(redis.clone(), pg, layout, config(settings, &name.name));
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
