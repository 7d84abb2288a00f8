//! Audit: re-derive every recorded decision from the event sequence and the policy that was in
//! force, and the "what if" of another policy over the same sequence. Both are fed events in
//! replay order ([`crate::replay`]) and hold only per-client accepted times, never the events.
//!
//! The audit runs one `limiter::model::RulesModel`, the reference the Lua script is tested
//! against, over every rule of the policy. Each event carries the policy it was decided under
//! (one rule's windows, or a ruleset's compact text); when it changes, the model keeps every
//! rule's accepted history and judges from then on under the new rules, which is what Redis
//! does (the quota sets outlive a policy change, per rule name). Decisions at a policy change
//! are therefore judged under the new policy with the history of the old. `blocked` events
//! were refused before any rule and consume nothing; they are counted, not re-derived.
//!
//! Events before the audited range (`since`) are history, not judged: their recorded accepted
//! requests are loaded into the model as they stand, so the first judged decisions see the same
//! quota the script saw. Load at least the longest window of the policy before `since`.

use std::collections::BTreeMap;
use std::fmt;

use limiter::model::{RulesDecision, RulesModel};
use limiter::{Event, Outcome, Ruleset};
use uuid::Uuid;

use crate::replay::{Replayed, StreamId};

/// How far a decision time may lie from its stream entry's time (the entry id's milliseconds)
/// before the time is called tampered. The script reads `TIME` and appends in one step, so
/// the two differ by well under this.
pub const STREAM_TIME_TOLERANCE_MS: i64 = 1_000;

/// What a decision was: recorded on the event, or derived by the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub violated: Vec<String>,
    pub retry_after: u64,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Accepted => f.write_str("accepted"),
            Outcome::Blocked => f.write_str("blocked"),
            Outcome::Rejected => write!(
                f,
                "rejected [{}] retry_after {}",
                self.violated.join(","),
                self.retry_after
            ),
        }
    }
}

/// One event whose record disagrees with the re-derivation or with itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub id: Uuid,
    pub partition: u16,
    pub stream_id: StreamId,
    pub at_us: i64,
    pub client: String,
    pub policy: String,
    pub recorded: Verdict,
    /// `None` when the policy does not parse, so nothing could be derived.
    pub derived: Option<Verdict>,
    pub reasons: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} (partition {}, stream id {}, at {}, client {}, policy {}): recorded {}",
            self.id,
            self.partition,
            self.stream_id,
            crate::json::rfc3339_micros(self.at_us),
            self.client,
            self.policy,
            self.recorded
        )?;
        if let Some(derived) = &self.derived {
            write!(f, ", derived {derived}")?;
        }
        write!(f, ": {}", self.reasons.join("; "))
    }
}

/// Totals of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Events judged (in the range).
    pub checked: u64,
    /// Events before the range loaded as history only.
    pub history: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub blocked: u64,
    pub mismatches: u64,
    /// Every policy seen in the range, in order of first appearance.
    pub policies: Vec<String>,
    /// How often the policy changed between consecutive judged events.
    pub policy_changes: u64,
}

impl AuditSummary {
    pub fn consistent(&self) -> bool {
        self.mismatches == 0
    }
}

impl fmt::Display for AuditSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events checked ({} accepted, {} rejected, {} blocked; {} earlier events loaded as history), {} mismatches; policies: {}",
            self.checked,
            self.accepted,
            self.rejected,
            self.blocked,
            self.history,
            self.mismatches,
            if self.policies.is_empty() {
                "none".to_owned()
            } else {
                self.policies.join(" → ")
            }
        )?;
        if self.policy_changes > 0 {
            write!(
                f,
                " ({} changes; decisions at a change are judged under the new policy with the history of the old)",
                self.policy_changes
            )?;
        }
        Ok(())
    }
}

/// Re-derives recorded decisions, one event at a time, in replay order.
pub struct Auditor {
    since_us: Option<i64>,
    model: Option<RulesModel>,
    /// The policy text the model judges under now.
    policy: String,
    /// Per partition: the previous event's time and stream id.
    previous: BTreeMap<u16, (i64, StreamId)>,
    summary: AuditSummary,
}

impl Auditor {
    /// Judges events from `since_us` on; earlier ones are history.
    pub fn new(since_us: Option<i64>) -> Self {
        Self {
            since_us,
            model: None,
            policy: String::new(),
            previous: BTreeMap::new(),
            summary: AuditSummary::default(),
        }
    }

    /// Feeds the next event; returns what is wrong with it, if anything.
    pub fn observe(&mut self, item: &Replayed) -> Option<Mismatch> {
        let event = &item.event;
        let client = event.client_key();
        let judged = self.since_us.is_none_or(|s| event.at_us >= s);
        let mut reasons = Vec::new();

        if let Some((at_us, id)) = self
            .previous
            .insert(item.partition, (event.at_us, item.stream_id))
            && event.at_us < at_us
        {
            reasons.push(format!(
                "decision time goes back {} µs from the previous event of partition {} (stream id {id})",
                at_us - event.at_us,
                item.partition
            ));
        }
        let entry_ms = i64::try_from(item.stream_id.ms).unwrap_or(i64::MAX);
        let drift_ms = event.at_us.div_euclid(1_000) - entry_ms;
        if drift_ms.abs() > STREAM_TIME_TOLERANCE_MS {
            reasons.push(format!(
                "decision time is {drift_ms} ms from its stream entry's time"
            ));
        }
        if !item.at_matches {
            reasons.push("the archived `at` disagrees with `at_us`".to_owned());
        }
        if item.differs_from_stream {
            reasons.push("the archived row differs from the entry still on the stream".to_owned());
        }

        let mut unparsable = false;
        if event.policy != self.policy {
            match Ruleset::parse_text(&event.policy) {
                Ok(rules) => {
                    match &mut self.model {
                        Some(model) => model.set_ruleset(rules),
                        None => self.model = Some(RulesModel::new(rules)),
                    }
                    if judged && !self.policy.is_empty() {
                        self.summary.policy_changes += 1;
                    }
                    self.policy.clone_from(&event.policy);
                }
                Err(e) => {
                    unparsable = true;
                    reasons.push(format!("policy `{}` does not parse: {e}", event.policy));
                }
            }
        }
        if judged && !unparsable && !self.summary.policies.contains(&event.policy) {
            self.summary.policies.push(event.policy.clone());
        }

        let recorded = Verdict {
            outcome: event.outcome,
            violated: event.violated.clone(),
            retry_after: event.retry_after,
        };
        let model = if unparsable {
            None
        } else {
            self.model.as_mut()
        };
        if !judged {
            self.summary.history += 1;
            // History counts as recorded: rejected requests consume nothing.
            if let Some(model) = model
                && event.outcome == Outcome::Accepted
            {
                // Counted by every rule that had room, as the script counted it.
                model.decide_event(event);
            }
            return None;
        }

        self.summary.checked += 1;
        match event.outcome {
            Outcome::Accepted => self.summary.accepted += 1,
            Outcome::Rejected => self.summary.rejected += 1,
            Outcome::Blocked => self.summary.blocked += 1,
        }
        let derived = match model {
            // Refused before any rule: nothing to re-derive, nothing consumed.
            _ if event.outcome == Outcome::Blocked => None,
            Some(m) => Some(verdict(judge(m, event))),
            None => None,
        };
        if let Some(derived) = &derived {
            if derived.outcome != recorded.outcome {
                reasons.push(format!(
                    "recorded {} but the policy {} it",
                    recorded.outcome.as_str(),
                    match derived.outcome {
                        Outcome::Accepted => "accepts",
                        Outcome::Rejected | Outcome::Blocked => "rejects",
                    }
                ));
            } else {
                if derived.violated != recorded.violated {
                    reasons.push(format!(
                        "violated windows recorded [{}], derived [{}]",
                        recorded.violated.join(","),
                        derived.violated.join(",")
                    ));
                }
                if derived.retry_after != recorded.retry_after {
                    reasons.push(format!(
                        "retry_after recorded {} s, derived {} s",
                        recorded.retry_after, derived.retry_after
                    ));
                }
            }
        }
        if reasons.is_empty() {
            return None;
        }
        self.summary.mismatches += 1;
        Some(Mismatch {
            id: event.id,
            partition: item.partition,
            stream_id: item.stream_id,
            at_us: event.at_us,
            client,
            policy: event.policy.clone(),
            recorded,
            derived,
            reasons,
        })
    }

    pub fn summary(&self) -> &AuditSummary {
        &self.summary
    }

    pub fn finish(self) -> AuditSummary {
        self.summary
    }
}

fn judge(model: &mut RulesModel, event: &Event) -> RulesDecision {
    model.decide_event(event)
}

fn verdict(d: RulesDecision) -> Verdict {
    Verdict {
        outcome: d.outcome,
        violated: d.violated,
        retry_after: d.retry_after,
    }
}

/// Per-window and total results of one policy over an event sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhatIfSummary {
    pub policy: String,
    /// Attempts judged (in the range).
    pub attempts: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejections each window took part in, in policy order (one rejection can name several).
    pub rejected_by_window: Vec<(String, u64)>,
    /// Attempts each shadow window would have refused.
    pub shadow_by_window: Vec<(String, u64)>,
    /// What was recorded for the same attempts.
    pub recorded_accepted: u64,
    pub recorded_rejected: u64,
    /// Blocked attempts are not judged again: they never reached a rule.
    pub recorded_blocked: u64,
}

impl fmt::Display for WhatIfSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let windows: Vec<String> = self
            .rejected_by_window
            .iter()
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        write!(
            f,
            "under {}: {} attempts, {} accepted, {} rejected (by window: {}); recorded: {} accepted, {} rejected, {} blocked",
            self.policy,
            self.attempts,
            self.accepted,
            self.rejected,
            windows.join(", "),
            self.recorded_accepted,
            self.recorded_rejected,
            self.recorded_blocked
        )?;
        if !self.shadow_by_window.is_empty() {
            let shadow: Vec<String> = self
                .shadow_by_window
                .iter()
                .map(|(name, n)| format!("{name}: {n}"))
                .collect();
            write!(
                f,
                "; shadow rules would have refused: {}",
                shadow.join(", ")
            )?;
        }
        Ok(())
    }
}

/// "What if" another policy had been in force: every recorded event, accepted or rejected, is
/// an attempt judged under `policy` (a rejected request might not have been retried the same
/// way under another policy; the event log cannot know, so it counts what was tried).
pub struct WhatIf {
    since_us: Option<i64>,
    model: RulesModel,
    summary: WhatIfSummary,
}

impl WhatIf {
    /// Counts attempts from `since_us` on; earlier ones only warm the model up.
    pub fn new(rules: Ruleset, since_us: Option<i64>) -> Self {
        let windows = |mode: limiter::Mode| -> Vec<(String, u64)> {
            rules
                .rules()
                .iter()
                .filter(|r| r.mode == mode)
                .flat_map(|r| r.limits.windows().iter().map(|w| (r.window_name(w), 0)))
                .collect()
        };
        let summary = WhatIfSummary {
            policy: rules.to_string(),
            rejected_by_window: windows(limiter::Mode::Enforce),
            shadow_by_window: windows(limiter::Mode::Shadow),
            ..WhatIfSummary::default()
        };
        Self {
            since_us,
            model: RulesModel::new(rules),
            summary,
        }
    }

    pub fn observe(&mut self, item: &Replayed) {
        let event = &item.event;
        let counted = self.since_us.is_none_or(|s| event.at_us >= s);
        if event.outcome == Outcome::Blocked {
            self.summary.recorded_blocked += u64::from(counted);
            return;
        }
        let decision = judge(&mut self.model, event);
        if !counted {
            return;
        }
        let s = &mut self.summary;
        s.attempts += 1;
        match event.outcome {
            Outcome::Accepted => s.recorded_accepted += 1,
            Outcome::Rejected | Outcome::Blocked => s.recorded_rejected += 1,
        }
        let tally = |list: &mut Vec<(String, u64)>, names: &[String]| {
            for name in names {
                if let Some((_, n)) = list.iter_mut().find(|(w, _)| w == name) {
                    *n += 1;
                }
            }
        };
        tally(&mut s.shadow_by_window, &decision.shadow_violated);
        match decision.outcome {
            Outcome::Accepted | Outcome::Blocked => s.accepted += 1,
            Outcome::Rejected => {
                s.rejected += 1;
                tally(&mut s.rejected_by_window, &decision.violated);
            }
        }
    }

    pub fn finish(self) -> WhatIfSummary {
        self.summary
    }
}
