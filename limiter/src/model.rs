//! A pure-Rust model of the policy: the same rolling-window rules the Lua script applies,
//! written plainly. Tests hold the script to it, and audits re-derive recorded decisions with it.

use std::collections::{HashMap, VecDeque};

use std::net::IpAddr;

use crate::event::{Event, Outcome};
use crate::policy::Policy;
use crate::rules::{Mode, Ruleset, Subject};

/// What the model decides for one request at one instant, under the seed's single rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDecision {
    pub outcome: Outcome,
    pub violated: Vec<String>,
    /// Whole seconds, rounded up, never 0 when rejected; 0 when accepted.
    pub retry_after: u64,
    /// Remaining quota per window after this decision, in policy order.
    pub remaining: Vec<u32>,
}

/// The seed's rule alone: one client key per request (today's API of the model).
#[derive(Clone, Debug)]
pub struct Model {
    inner: RulesModel,
}

impl Model {
    pub fn new(policy: Policy) -> Self {
        Self {
            inner: RulesModel::new(Ruleset::seed(policy)),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.ruleset.rules()[0].limits
    }

    /// Judges later requests under `policy`, keeping the accepted history: what Redis does when
    /// the policy changes (the quota sets outlive it), so audits across a change agree with it.
    pub fn set_policy(&mut self, policy: Policy) {
        self.inner.set_ruleset(Ruleset::seed(policy));
    }

    /// Counts an accepted request of `client` at `at_us` without deciding it: loads history that
    /// an audit does not judge (events before its range). Calls must come in decision order.
    pub fn record(&mut self, client: &str, at_us: i64) {
        self.inner.record_keys(&[Some(client.to_owned())], at_us);
    }

    /// Decides a request of `client` at `now_us` (µs since the epoch) and records it if accepted.
    /// Calls must come in decision order.
    pub fn decide(&mut self, client: &str, now_us: i64) -> ModelDecision {
        let d = self
            .inner
            .decide_keys(&[Some(client.to_owned())], false, now_us);
        ModelDecision {
            outcome: d.outcome,
            violated: d.violated,
            retry_after: d.retry_after,
            remaining: d.remaining.into_iter().flatten().collect(),
        }
    }
}

/// What the model decides for one request under a whole ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesDecision {
    pub outcome: Outcome,
    /// Windows of enforced rules that refused, named as the event names them (`number.1m`).
    pub violated: Vec<String>,
    /// Windows of shadow rules that would have refused.
    pub shadow_violated: Vec<String>,
    /// Whole seconds until every violated window of every enforced rule has room; 0 when
    /// accepted.
    pub retry_after: u64,
    /// Remaining quota per rule and window after this decision, in policy order.
    pub remaining: Vec<Vec<u32>>,
}

/// Accepted-request times per rule key, enough to decide any later request under rules: the
/// reference the Lua script is held to.
#[derive(Clone, Debug)]
pub struct RulesModel {
    ruleset: Ruleset,
    /// Keyed by `<rule>\u{0}<key value>`.
    accepted: HashMap<String, VecDeque<i64>>,
}

impl RulesModel {
    pub fn new(ruleset: Ruleset) -> Self {
        Self {
            ruleset,
            accepted: HashMap::new(),
        }
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// Judges later requests under `ruleset`, keeping every rule's history (a rule of the same
    /// name keeps counting what it counted, as the Redis keys do).
    pub fn set_ruleset(&mut self, ruleset: Ruleset) {
        self.ruleset = ruleset;
    }

    /// The key values of every rule for a request, in rule order (`None` where a rule does not
    /// apply, see [`crate::Rule::applies_to`]).
    pub fn keys(&self, ip: IpAddr, subject: &Subject<'_>) -> Vec<Option<String>> {
        let network = self.ruleset.clients.network(ip);
        let subject = Subject {
            network: &network,
            ..*subject
        };
        self.ruleset
            .rules()
            .iter()
            .map(|r| r.key_value(&subject))
            .collect()
    }

    /// Decides a request of `POST /api/sms` from `ip` to `to` at `now_us`; see
    /// [`RulesModel::decide_keys`].
    pub fn decide(
        &mut self,
        ip: IpAddr,
        to: &str,
        country: Option<&str>,
        now_us: i64,
    ) -> RulesDecision {
        let keys = self.keys(ip, &Subject::direct("", to, country));
        let allowed = self.ruleset.clients.allowed(ip);
        self.decide_keys(&keys, allowed, now_us)
    }

    /// Decides the request `event` records, at its own time, with everything the rules look at
    /// (its API client too): what audits and the tests re-derive every event with.
    pub fn decide_event(&mut self, event: &Event) -> RulesDecision {
        let subject = Subject {
            network: "",
            ip_known: !event.ip_unattributed,
            to: &event.to,
            country: event.country.as_deref(),
            api_client: event.api_client.as_deref(),
        };
        let keys = self.keys(event.ip, &subject);
        let allowed = self.ruleset.clients.allowed(event.ip);
        self.decide_keys(&keys, allowed, event.at_us)
    }

    /// Counts an accepted request without deciding it, under every rule that would have counted it.
    pub fn record_keys(&mut self, keys: &[Option<String>], at_us: i64) {
        for (rule, key) in self.ruleset.rules().iter().zip(keys) {
            let Some(key) = key else { continue };
            self.accepted
                .entry(format!("{}\u{0}{key}", rule.name))
                .or_default()
                .push_back(at_us);
        }
    }

    /// Decides a request whose rule key values are `keys` (rule order) at `now_us` and counts it
    /// if accepted. Each rule that itself has room counts an accepted request, shadow rules
    /// included, so a shadow rule counts exactly what it would have counted if enforced. An
    /// `allowed` client is never refused (every rule acts as a shadow). Calls must come in
    /// decision order. A rule whose key is `None` does not apply: it counts nothing and has
    /// all its room.
    pub fn decide_keys(
        &mut self,
        keys: &[Option<String>],
        allowed: bool,
        now_us: i64,
    ) -> RulesDecision {
        let mut violated = Vec::new();
        let mut shadow_violated = Vec::new();
        let mut retry_us = 0_i64;
        let mut per_rule = Vec::with_capacity(keys.len());
        for (rule, key) in self.ruleset.rules().iter().zip(keys) {
            let Some(key) = key else {
                let counts = rule.limits.windows().iter().map(|w| (0, w.limit as usize));
                per_rule.push((counts.collect(), false));
                continue;
            };
            let longest = i64::try_from(rule.limits.longest().as_micros()).unwrap_or(i64::MAX);
            let times = self
                .accepted
                .entry(format!("{}\u{0}{key}", rule.name))
                .or_default();
            // A request at t counts in a window of length d while t > now - d.
            while times.front().is_some_and(|t| *t <= now_us - longest) {
                times.pop_front();
            }
            let enforced = rule.mode == Mode::Enforce && !allowed;
            let mut counts = Vec::with_capacity(rule.limits.windows().len());
            let mut has_room = true;
            for window in rule.limits.windows() {
                let d = window.duration_micros();
                let in_window: Vec<i64> =
                    times.iter().copied().filter(|t| *t > now_us - d).collect();
                let count = in_window.len();
                let limit = window.limit as usize;
                if count >= limit {
                    has_room = false;
                    let name = rule.window_name(window);
                    if enforced {
                        violated.push(name);
                        // The (count - limit + 1)-th oldest must leave before one more fits.
                        retry_us = retry_us.max(in_window[count - limit] + d - now_us);
                    } else {
                        shadow_violated.push(name);
                    }
                }
                counts.push((count, limit));
            }
            per_rule.push((counts, has_room));
        }
        let outcome = if violated.is_empty() {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        };
        let mut remaining = Vec::with_capacity(per_rule.len());
        for ((rule, key), (counts, has_room)) in self.ruleset.rules().iter().zip(keys).zip(per_rule)
        {
            let counted = outcome == Outcome::Accepted && has_room;
            if let (true, Some(key)) = (counted, key) {
                self.accepted
                    .entry(format!("{}\u{0}{key}", rule.name))
                    .or_default()
                    .push_back(now_us);
            }
            remaining.push(
                counts
                    .iter()
                    .map(|(count, limit)| {
                        u32::try_from(limit.saturating_sub(count + usize::from(counted)))
                            .unwrap_or(0)
                    })
                    .collect(),
            );
        }
        RulesDecision {
            outcome,
            violated,
            shadow_violated,
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
