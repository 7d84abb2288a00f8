//! `smsgate replay` and `smsgate audit`: the command lines, wired to the ledger's replay
//! reader, auditor and what-if model. The logic lives in the `ledger` crate.
//!
//! Times (`--since`, `--until`) are RFC 3339 (`2026-11-28T07:00:00Z`) or a span back from now
//! (`90s`, `15m`, `1h`, `7d`).

use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use archiver::{Kind, RetainedFrom};
use clap::{Args, ValueEnum};
use ledger::{
    Auditor, Filter, Replay, ReplayOptions, WhatIf, event_json, table_header, table_line,
};
use limiter::{Outcome, Ruleset};

use crate::cli::Settings;

/// The range and the client: shared by `replay` and `audit`.
#[derive(Clone, Debug, Args)]
pub struct RangeArgs {
    /// From this decision time (inclusive): RFC 3339, or a span back from now like `1h`.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Until this decision time (exclusive): RFC 3339, or a span back from now.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only this destination number, E.164 as recorded (e.g. `+14155550123`).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this client IP.
    #[arg(long)]
    pub ip: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One Event JSON object per line (docs/operator-api.md, plus `partition` and `policy`).
    Json,
    /// A fixed-width table for people.
    Table,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    Accepted,
    Rejected,
    Blocked,
}

#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only accepted, only rejected or only blocked events.
    #[arg(long, value_enum)]
    pub outcome: Option<OutcomeArg>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// After the range, keep printing new events as they are decided (like `tail -f`).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Clone, Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// What if: also judge every recorded attempt in the range under this policy and report
    /// accepted and rejected totals, and rejections per window: a TOML policy file, the seed's
    /// windows (`5/1m,20/1d`) or a ruleset's compact text as events record it.
    #[arg(long, value_parser = parse_what_if)]
    pub policy: Option<Ruleset>,
    /// History read before `--since` and loaded (not judged), so the first decisions of the
    /// range see the quota the script saw. Default: the longest window of SMSGATE_LIMITS and
    /// `--policy`.
    #[arg(long, value_parser = parse_span)]
    pub lookback: Option<Duration>,
}

/// A policy file when `text` names one, else a policy's text.
fn parse_what_if(text: &str) -> Result<Ruleset, String> {
    let path = std::path::Path::new(text);
    if path.is_file() {
        return crate::cli::load_rules(path).map_err(|e| format!("{e:#}"));
    }
    Ruleset::parse_text(text).map_err(|e| e.to_string())
}

/// RFC 3339, or a span back from now (`1h`); µs since the epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_micros());
    }
    let span = parse_span(text).map_err(|_| {
        format!("`{text}` is neither an RFC 3339 time nor a span like 30s, 15m, 1h, 7d")
    })?;
    let span = chrono::Duration::from_std(span).map_err(|e| e.to_string())?;
    Ok((chrono::Utc::now() - span).timestamp_micros())
}

fn parse_span(text: &str) -> Result<Duration, String> {
    limiter::policy::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a span like 30s, 15m, 1h or 7d"))
}

fn filter(range: &RangeArgs) -> Filter {
    Filter {
        since_us: range.since,
        until_us: range.until,
        to: range.to.as_ref().map(|t| t.trim().to_owned()),
        ip: range.ip,
        outcome: None,
    }
}

/// `smsgate replay`.
pub async fn replay(settings: &Settings, args: &ReplayArgs) -> anyhow::Result<()> {
    let (redis, pg) = crate::app::connect_stores(settings, 1).await?;
    let filter = Filter {
        outcome: args.outcome.map(|o| match o {
            OutcomeArg::Accepted => Outcome::Accepted,
            OutcomeArg::Rejected => Outcome::Rejected,
            OutcomeArg::Blocked => Outcome::Blocked,
        }),
        ..filter(&args.range)
    };
    // Said before the first event (on stderr, so JSON lines stay clean): what retention has
    // dropped of the asked range is missing from what follows.
    let kinds = match filter.outcome {
        Some(Outcome::Accepted) => vec![Kind::Accepted],
        Some(Outcome::Rejected) => vec![Kind::Rejected],
        Some(Outcome::Blocked) => vec![Kind::Blocked],
        None => vec![Kind::Accepted, Kind::Rejected, Kind::Blocked],
    };
    let retained = RetainedFrom::load(&pg)
        .await
        .context("reading what retention dropped")?;
    let gaps = retained.gaps(&kinds, filter.since_us);
    if !gaps.is_empty() {
        eprintln!(
            "notice: the archive no longer holds {} (dropped by SMSGATE_RETENTION); replaying what is held",
            RetainedFrom::describe(&gaps)
        );
    }
    let mut reader = Replay::new(
        redis,
        pg,
        &settings.layout(),
        ReplayOptions {
            filter,
            follow: args.follow,
        },
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut line = String::new();
    if args.format == Format::Table {
        line = table_header();
    }
    let mut written = print(&mut out, &line);
    while written.is_ok() {
        let Some(item) = reader.next().await.context("replaying")? else {
            break;
        };
        line.clear();
        match args.format {
            Format::Json => {
                line = serde_json::to_string(&event_json(&item))?;
            }
            Format::Table => table_line(&item, &mut line),
        }
        written = print(&mut out, &line);
        if args.follow && written.is_ok() {
            written = out.flush();
        }
    }
    match written.and_then(|()| out.flush()) {
        // `smsgate replay | head` closes the pipe: the reader's choice, not a failure.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("writing the replay")?,
    }
    if reader.skipped > 0 {
        tracing::warn!(
            skipped = reader.skipped,
            "undecodable stream entries skipped (see the dead-letter streams)"
        );
    }
    Ok(())
}

fn print(out: &mut impl Write, line: &str) -> std::io::Result<()> {
    if line.is_empty() {
        return Ok(());
    }
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")
}

/// `smsgate audit`: true when the record is consistent.
pub async fn audit(settings: &Settings, args: &AuditArgs) -> anyhow::Result<bool> {
    let (redis, pg) = crate::app::connect_stores(settings, 1).await?;
    let lookback = args.lookback.unwrap_or_else(|| {
        let configured = settings
            .rules()
            .map_or_else(|_| settings.limits.longest(), |r| r.longest());
        args.policy
            .as_ref()
            .map_or(configured, |p| p.longest().max(configured))
    });
    // The audit is exact only where a decision's whole quota history is held: from the first
    // instant of accepted history retention kept, plus the longest window.
    let retained = RetainedFrom::load(&pg)
        .await
        .context("reading what retention dropped")?;
    let gaps = retained.gaps(
        &[Kind::Accepted, Kind::Rejected, Kind::Blocked],
        args.range.since,
    );
    let since = retained.judged_from(args.range.since, lookback);
    let mut filter = filter(&args.range);
    filter.since_us =
        since.map(|s| s.saturating_sub(i64::try_from(lookback.as_micros()).unwrap_or(i64::MAX)));
    let mut reader = Replay::new(
        redis,
        pg,
        &settings.layout(),
        ReplayOptions {
            filter,
            follow: false,
        },
    );
    let mut auditor = Auditor::new(since);
    let mut what_if = args.policy.clone().map(|p| WhatIf::new(p, since));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while let Some(item) = reader.next().await.context("replaying")? {
        if let Some(mismatch) = auditor.observe(&item) {
            writeln!(out, "MISMATCH {mismatch}")?;
        }
        if let Some(what_if) = &mut what_if {
            what_if.observe(&item);
        }
    }
    let summary = auditor.finish();
    writeln!(out, "audit: {summary}")?;
    if !gaps.is_empty() {
        writeln!(
            out,
            "not held: {} (dropped by SMSGATE_RETENTION)",
            RetainedFrom::describe(&gaps)
        )?;
    }
    if let Some(from) = since.filter(|s| Some(*s) != args.range.since) {
        writeln!(
            out,
            "judged from {} on: the first instant whose {} of accepted history the archive still holds",
            limiter::json::rfc3339_micros(from),
            humanize(lookback)
        )?;
    }
    if since.is_some() {
        writeln!(
            out,
            "history loaded before --since: {} (the longest window judged must not exceed it)",
            humanize(lookback)
        )?;
    }
    if reader.skipped > 0 {
        writeln!(
            out,
            "{} undecodable stream entries skipped (see the dead-letter streams)",
            reader.skipped
        )?;
    }
    if let Some(what_if) = what_if {
        writeln!(out, "what if: {}", what_if.finish())?;
        writeln!(
            out,
            "(every recorded attempt, accepted or rejected, counts as an attempt under the other policy)"
        )?;
    }
    writeln!(
        out,
        "{}",
        if summary.consistent() {
            "the record is consistent"
        } else {
            "the record is NOT consistent"
        }
    )?;
    Ok(summary.consistent())
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
