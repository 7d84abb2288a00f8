//! A pure-Rust model of the policy: the same rolling-window rule the Lua script applies,
//! written plainly. Tests hold the script to it, and audits re-derive recorded decisions with it.

use std::collections::{HashMap, VecDeque};

use crate::event::Outcome;
use crate::policy::Policy;

/// What the model decides for one request at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDecision {
    pub outcome: Outcome,
    pub violated: Vec<String>,
    /// Whole seconds, rounded up, never 0 when rejected; 0 when accepted.
    pub retry_after: u64,
    /// Remaining quota per window after this decision, in policy order.
    pub remaining: Vec<u32>,
}

/// Accepted-request times per client, enough to decide any later request.
#[derive(Clone, Debug)]
pub struct Model {
    policy: Policy,
    accepted: HashMap<String, VecDeque<i64>>,
}

impl Model {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            accepted: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Judges later requests under `policy`, keeping the accepted history: what Redis does when
    /// the policy changes (the quota sets outlive it), so audits across a change agree with it.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Counts an accepted request of `client` at `at_us` without deciding it: loads history that
    /// an audit does not judge (events before its range). Calls must come in decision order.
    pub fn record(&mut self, client: &str, at_us: i64) {
        self.accepted
            .entry(client.to_owned())
            .or_default()
            .push_back(at_us);
    }

    /// Decides a request of `client` at `now_us` (µs since the epoch) and records it if accepted.
    /// Calls must come in decision order.
    pub fn decide(&mut self, client: &str, now_us: i64) -> ModelDecision {
        let longest = i64::try_from(self.policy.longest().as_micros()).unwrap_or(i64::MAX);
        let times = self.accepted.entry(client.to_owned()).or_default();
        // A request at t counts in a window of length d while t > now - d.
        while times.front().is_some_and(|t| *t <= now_us - longest) {
            times.pop_front();
        }
        let mut violated = Vec::new();
        let mut retry_us = 0_i64;
        let mut counts = Vec::with_capacity(self.policy.windows().len());
        for window in self.policy.windows() {
            let d = window.duration_micros();
            let in_window: Vec<i64> = times.iter().copied().filter(|t| *t > now_us - d).collect();
            let count = in_window.len();
            let limit = window.limit as usize;
            if count >= limit {
                violated.push(window.name.clone());
                // The (count - limit + 1)-th oldest must leave before one more fits.
                let frees_at = in_window[count - limit] + d;
                retry_us = retry_us.max(frees_at - now_us);
            }
            counts.push((count, limit));
        }
        let outcome = if violated.is_empty() {
            times.push_back(now_us);
            Outcome::Accepted
        } else {
            Outcome::Rejected
        };
        let used_now = usize::from(outcome == Outcome::Accepted);
        let remaining = counts
            .iter()
            .map(|(count, limit)| {
                u32::try_from(limit.saturating_sub(count + used_now)).unwrap_or(0)
            })
            .collect();
        ModelDecision {
            outcome,
            violated,
            retry_after: whole_seconds_up(retry_us),
            remaining,
        }
    }
}

/// Microseconds to whole seconds, rounded up; 0 stays 0.
pub fn whole_seconds_up(micros: i64) -> u64 {
    u64::try_from((micros.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn three_a_minute_then_exact_retry_after() {
        let mut model = Model::new(Policy::default());
        let t0 = 1_000 * S;
        for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
            let d = model.decide("c", t0 + i as i64 * S);
            assert_eq!(d.outcome, Outcome::Accepted);
            assert_eq!(d.remaining[0], remaining);
        }
        let d = model.decide("c", t0 + 10 * S + 1);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert_eq!(d.violated, ["1m"]);
        // The first request (t0) leaves the window at t0 + 60 s: 49.999999 s away, so 50.
        assert_eq!(d.retry_after, 50);
        assert_eq!(
            model.decide("c", t0 + 60 * S - 1).outcome,
            Outcome::Rejected
        );
        assert_eq!(model.decide("c", t0 + 60 * S).outcome, Outcome::Accepted);
    }

    #[test]
    fn rejected_requests_consume_nothing_and_clients_are_apart() {
        let mut model = Model::new(Policy::parse("1/10s").unwrap());
        assert_eq!(model.decide("a", 0).outcome, Outcome::Accepted);
        for t in 1..9 {
            assert_eq!(model.decide("a", t * S).outcome, Outcome::Rejected);
        }
        assert_eq!(model.decide("b", 5 * S).outcome, Outcome::Accepted);
        assert_eq!(model.decide("a", 10 * S).outcome, Outcome::Accepted);
    }

    #[test]
    fn recorded_history_counts_and_survives_a_policy_change() {
        let mut model = Model::new(Policy::parse("2/1m").unwrap());
        model.record("c", 0);
        model.record("c", S);
        assert_eq!(model.decide("c", 2 * S).outcome, Outcome::Rejected);
        model.set_policy(Policy::parse("3/1m").unwrap());
        assert_eq!(model.decide("c", 3 * S).outcome, Outcome::Accepted);
        assert_eq!(model.decide("c", 4 * S).retry_after, 56);
    }

    #[test]
    fn retry_after_is_the_longest_wait_of_all_violated_windows() {
        let mut model = Model::new(Policy::parse("2/2s,3/10s").unwrap());
        for t in [0, S, 3 * S] {
            assert_eq!(model.decide("c", t).outcome, Outcome::Accepted);
        }
        let d = model.decide("c", 3 * S + S / 2);
        assert_eq!(d.violated, ["10s"]);
        assert_eq!(d.retry_after, 7); // the request at 0 leaves the 10 s window at 10 s
        assert_eq!(whole_seconds_up(0), 0);
        assert_eq!(whole_seconds_up(1), 1);
        assert_eq!(whole_seconds_up(S), 1);
    }
}
