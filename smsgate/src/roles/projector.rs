//! The projector role: live stats and the operator API (see the `projector` crate).
//!
//! Starts one consumer-group worker and one live-feed reader per process, and hands back the
//! operator routes (`/api/stats`, `/api/events`, `/api/clients/{ip}/{to}`, `/api/live`), which
//! the `App` puts behind the admin token.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::TryStreamExt;
use ledger::{Replay, ReplayOptions};
use projector::{ApiState, LiveFeed, Projector, ProjectorConfig, Retention};

use super::{RoleContext, RoleParts, consumer_name, release_consumer_name};
use crate::cli::Settings;

pub async fn start(ctx: &RoleContext) -> anyhow::Result<RoleParts> {
    let layout = ctx.settings.layout();
    // The per-client views show one rule's windows: the seed's rule of the policy in force.
    let policy = ctx.settings.rules()?.primary().clone();
    // Created at 0 so the dead-letter alert sees the first one.
    metrics::counter!("smsgate_dead_letters_total", "group" => projector::GROUP).increment(0);
    let live = LiveFeed::start(ctx.redis.clone(), layout.clone(), ctx.shutdown.clone()).await;
    let (redis, worker_layout, worker_policy) = (ctx.redis.clone(), layout.clone(), policy.clone());
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        let Some(name) = consumer_name(&redis, &worker_layout, projector::GROUP, &shutdown).await
        else {
            return;
        };
        let config = ProjectorConfig::new(name.name.clone());
        let worker = Projector::new(redis.clone(), worker_layout, worker_policy, config);
        if let Err(e) = worker.run_until_stopped(shutdown).await {
            tracing::error!(error = %e, "projector stopped");
        }
        release_consumer_name(&redis, &name).await;
    });
    let state = ApiState::new(ctx.redis.clone(), layout, policy, live);
    Ok(RoleParts {
        operator_routes: projector::router(state),
        ..RoleParts::default()
    })
}

/// `smsgate projector --rebuild`: resets the projections, recomputes them from the archive and
/// the stream's tail (the ledger's replay reader: every event once, in stream order per
/// partition) and points the `projector` group after the last rebuilt entry. Run it with
/// projectors stopped.
pub async fn rebuild(settings: &Settings) -> anyhow::Result<()> {
    let (redis, pg) = crate::app::connect_stores(settings, 2).await?;
    let layout = settings.layout();
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let source = Replay::new(redis.clone(), pg, &layout, ReplayOptions::default())
        .into_stream()
        .map_ok(|item| (item.stream_id.to_string(), item.event));
    let report = projector::rebuild(&redis, &layout, &Retention::default(), now_us, source)
        .await
        .context("rebuilding the projections")?;
    tracing::info!(
        applied = report.applied,
        skipped = report.skipped,
        "projections rebuilt"
    );
    println!(
        "rebuilt the projections from {} events ({} overlapping skipped)",
        report.applied, report.skipped
    );
    Ok(())
}
