//! `RateLimiter`: runs the decision script (EVALSHA, reloading on NOSCRIPT) over every rule of
//! the policy and turns its reply into a typed `Decision`. "Rate limited" is a value here, not an error.
//! On Redis Cluster a policy whose quotas span slots is decided by the reserve/commit protocol
//! of `cluster.rs` instead, whose reply has the script's format.

use std::net::IpAddr;
use std::sync::Arc;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::Value;
use fred::types::scripts::Script;
use uuid::Uuid;

use crate::batch::{self, GroupCommit};
use crate::cluster::{self, ClusterTiming, HeldDecision, Hold, Plan, RulePlan, WindowPlan};
use crate::codec::{PendingEvent, StoredMessage, encode_pending, encode_stored};
use crate::event::{Outcome, SCHEMA_VERSION};
use crate::layout::{Layout, client_key_of};
use crate::policy::Policy;
use crate::privacy::StoreMessage;
use crate::rules::{BlockReason, Destination, Dimension, Mode, Ruleset, SEED_RULE, Subject};

/// The Lua of the decision after its policy (see the header of `decide.lua` for its keys and
/// arguments); [`decide_script`] writes the policy above it.
const DECIDE_LUA: &str = concat!(include_str!("prelude.lua"), include_str!("decide.lua"));

/// `decide.lua` for `ruleset`: the rules and the body TTL as Lua constants, so a decision
/// neither sends nor parses them (each policy is its own script).
pub fn decide_script(ruleset: &Ruleset, body_ttl_ms: u64) -> String {
    use std::fmt::Write as _;
    let windows = ruleset.window_count();
    // The reply's windows: three big-endian i64 each (`parse_reply`).
    let reply_format = format!(">{}", "i8".repeat(3 * windows));
    // After the four header values, four per rule and four per window.
    let first_slot = 5 + 4 * (ruleset.rules().len() + windows);
    let mut lua = format!(
        "local RULES = {{{}, '{body_ttl_ms}', '{reply_format}', {first_slot},\n",
        ruleset.rules().len()
    );
    for rule in ruleset.rules() {
        let longest = i64::try_from(rule.limits.longest().as_micros()).unwrap_or(i64::MAX);
        // A quota outlives its longest window by a second, so no member it counts expires early.
        let expire_ms = longest.saturating_add(999) / 1000 + 1000;
        let _ = writeln!(
            lua,
            "  {}, {longest}, '{expire_ms}', {},",
            rule.mode == Mode::Enforce,
            rule.limits.windows().len()
        );
        // Windows carry the names events and headers use (`Rule::window_name`), as text and as
        // the MessagePack string a rejection's event lists.
        for w in rule.limits.windows() {
            let name = rule.window_name(w);
            let packed = rmp_serde::to_vec(&name).expect("a string always serializes");
            let _ = writeln!(
                lua,
                "    {}, {}, {}, {},",
                w.limit,
                w.duration_micros(),
                lua_string(name.as_bytes()),
                lua_string(&packed),
            );
        }
    }
    // The scratch slots, three per window.
    let _ = writeln!(lua, "  {}\n}}", "0, 0, 0, ".repeat(windows).trim_end());
    lua.push_str(DECIDE_LUA);
    lua
}

/// `bytes` as a Lua string literal, every byte but printable ASCII other than the quote and the
/// backslash as a decimal escape (names are validated, but the script does not rely on it).
fn lua_string(bytes: &[u8]) -> String {
    let mut quoted = String::from("'");
    for &b in bytes {
        if (b.is_ascii_graphic() || b == b' ') && b != b'\'' && b != b'\\' {
            quoted.push(char::from(b));
        } else {
            quoted.push_str(&format!("\\{b:03}"));
        }
    }
    quoted.push('\'');
    quoted
}

/// A validated request, ready to be decided.
#[derive(Clone, Debug)]
pub struct SmsRequest<'a> {
    pub ip: IpAddr,
    /// Destination number, already normalised to E.164.
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub message: &'a str,
    pub segments: u32,
}

/// What ingest knows about a request beyond its fields: where it goes, and its
/// `Idempotency-Key`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    pub destination: Destination<'a>,
    pub idempotency: Option<Idempotency<'a>>,
    /// The client's `status_callback` URL, recorded with an accepted request so the dispatcher
    /// reports every status change of the message there.
    pub status_callback: Option<&'a str>,
    /// The account SID of the API client that sent the request (the Twilio-compatible API);
    /// rules keyed on `api_client` judge only such requests.
    pub api_client: Option<&'a str>,
    /// True when the request's IP is the API client's own address because it named no end
    /// user's (`X-Smsgate-End-User-IP`): rules keyed on `ip` then do not judge the request.
    pub ip_unattributed: bool,
}

/// An `Idempotency-Key` and the fingerprint of the request it was sent with.
#[derive(Clone, Copy, Debug)]
pub struct Idempotency<'a> {
    /// Already validated by ingest: short and printable, so its Redis key is bounded.
    pub key: &'a str,
    pub fingerprint: &'a str,
}

/// One window of one rule after the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowState {
    /// As headers and events name it: `1m` for the rule `client`, else `rule.1m`. Shared
    /// text, written once per policy: every decision describes every window.
    pub name: Arc<str>,
    pub rule: Arc<str>,
    /// False for a shadow rule (and for every rule of an allow-listed client).
    pub enforced: bool,
    pub limit: u32,
    pub window_secs: u64,
    pub remaining: u32,
    /// Whole seconds until the oldest counted request leaves the window (0 when none counts).
    pub reset_after: u64,
    /// Whole seconds until this window would admit the request; 0 unless it refused it.
    pub retry_after: u64,
    /// A shadow window that would have refused the request (it refuses nothing).
    pub shadow_violated: bool,
}

impl WindowState {
    pub fn violated(&self) -> bool {
        self.retry_after > 0
    }
}

/// What the script decided, and where it recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: Uuid,
    pub outcome: Outcome,
    /// Decision time from Redis `TIME`, µs since the epoch.
    pub at_us: i64,
    /// Whole seconds, rounded up; 0 when accepted, never 0 when rejected.
    pub retry_after: u64,
    pub partition: u16,
    pub stream_id: String,
    /// Every window of every rule, in policy order (empty when blocked).
    pub windows: Vec<WindowState>,
    /// Why a `blocked` request was refused.
    pub reason: Option<BlockReason>,
    /// The first answer to an `Idempotency-Key` seen before: nothing was decided or recorded now.
    pub replayed: bool,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("redis is not connected")]
    Disconnected,
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from the decision script: {0}")]
    Reply(String),
    /// The `Idempotency-Key` was first used with another request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    /// Redis Cluster, multi-rule policy: the reservations of this request were held past the
    /// gateway's deadline, or reclaimed after their lease, before its event was recorded.
    /// Nothing was recorded or consumed; the request may be sent again.
    #[error("the request's reservations expired before it was recorded; nothing was sent")]
    LeaseExpired,
    /// Redis Cluster, multi-rule policy: a quota stayed full of reservations of requests in
    /// flight for the whole patience, so the request could not be decided in time. Nothing
    /// was recorded or consumed.
    #[error("the quotas of this request stayed busy with requests in flight; nothing was sent")]
    Contended,
}

impl LimiterError {
    /// True when the request was not decided for a passing reason (Redis away, a lease that
    /// ran out, a quota busy with requests in flight): a 503 whose client may retry shortly.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Disconnected | Self::Redis(_) | Self::LeaseExpired | Self::Contended
        )
    }
}

/// Decides requests against one policy, writing to one key layout.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    ruleset: Ruleset,
    policy_text: String,
    layout: Layout,
    /// `decide.lua` with this policy and body TTL written in.
    script: Arc<Script>,
    /// Decisions sent together while earlier ones are under way (see `batch.rs`); without it,
    /// one call per decision.
    group_commit: Option<Arc<GroupCommit>>,
    /// True unless the only rule is the seed's `client` on (ip, to), whose quota shares the
    /// client's partition with its stream.
    spans_slots: bool,
    /// How the bodies of accepted requests are kept (`SMSGATE_STORE_MESSAGE`).
    store: StoreMessage,
    /// How long an accepted body waits for the dispatcher in its own key before Redis drops it.
    body_ttl_ms: u64,
    /// The lease and patience of the reserve/commit protocol (Redis Cluster, several slots).
    timing: ClusterTiming,
    /// Every window of every rule, in policy order, as decisions describe them.
    windows: Arc<[PolicyWindow]>,
}

/// What a decision says of a window besides its counts, written once per policy.
#[derive(Clone, Debug)]
struct PolicyWindow {
    name: Arc<str>,
    rule: Arc<str>,
    /// The rule's position in the policy (what `applies` is indexed by).
    rule_index: usize,
    enforce: bool,
    limit: u32,
    window_secs: u64,
}

impl PolicyWindow {
    fn all(ruleset: &Ruleset) -> Arc<[PolicyWindow]> {
        let mut windows = Vec::with_capacity(ruleset.window_count());
        for (rule_index, rule) in ruleset.rules().iter().enumerate() {
            let rule_name: Arc<str> = rule.name.as_str().into();
            windows.extend(rule.limits.windows().iter().map(|w| PolicyWindow {
                name: rule.window_name(w).into(),
                rule: rule_name.clone(),
                rule_index,
                enforce: rule.mode == Mode::Enforce,
                limit: w.limit,
                window_secs: w.duration.as_secs(),
            }));
        }
        windows.into()
    }
}

impl RateLimiter {
    /// The seed's rule over `policy`'s windows.
    pub fn new(policy: Policy, layout: Layout) -> Self {
        Self::with_rules(Ruleset::seed(policy), layout)
    }

    pub fn with_rules(ruleset: Ruleset, layout: Layout) -> Self {
        let spans_slots = ruleset
            .rules()
            .iter()
            .any(|r| r.name != SEED_RULE || r.key != [Dimension::Ip, Dimension::To]);
        let store = StoreMessage::default();
        let body_ttl_ms = Self::DEFAULT_BODY_TTL_MS;
        Self {
            spans_slots,
            windows: PolicyWindow::all(&ruleset),
            policy_text: ruleset.to_string(),
            script: Arc::new(Script::from_lua(decide_script(&ruleset, body_ttl_ms))),
            group_commit: None,
            ruleset,
            layout,
            store,
            body_ttl_ms,
            timing: ClusterTiming::default(),
        }
    }

    /// The lease and patience of the reserve/commit protocol that decides a policy spanning
    /// slots on Redis Cluster (see the README's "Policy on Redis Cluster"): after a crash a
    /// rule under-admits for at most `timing.lease`.
    pub fn with_cluster_timing(mut self, timing: ClusterTiming) -> Self {
        self.timing = timing;
        self
    }

    pub fn cluster_timing(&self) -> ClusterTiming {
        self.timing
    }

    /// The default delivery TTL (1 h) and ten minutes more, so a body outlives every attempt.
    pub const DEFAULT_BODY_TTL_MS: u64 = 70 * 60 * 1000;

    /// Keeps accepted bodies in the form `store` says; the body the dispatcher needs waits in
    /// its own key for at most `body_ttl` (set it at least the delivery TTL: a message not
    /// handed over by then has expired anyway).
    pub fn with_privacy(mut self, store: StoreMessage, body_ttl: std::time::Duration) -> Self {
        self.store = store;
        self.body_ttl_ms = u64::try_from(body_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.script = Arc::new(Script::from_lua(decide_script(
            &self.ruleset,
            self.body_ttl_ms,
        )));
        self
    }

    /// Sends the decisions of a partition that arrive while its earlier calls are under way
    /// together, in one call (group commit; see the README's "Group commit"). Each request is
    /// still decided alone and exactly; a busy gateway pays one round trip for many.
    pub fn with_group_commit(mut self) -> Self {
        self.group_commit = Some(Arc::new(GroupCommit::new(self.layout.partitions())));
        self
    }

    /// Under group commit, the calls sent so far and the requests they decided.
    pub fn group_commit_totals(&self) -> Option<(u64, u64)> {
        self.group_commit.as_ref().map(|group| group.totals())
    }

    pub fn store_message(&self) -> StoreMessage {
        self.store
    }

    /// The windows of the seed's rule (or of the first rule when there is no rule `client`).
    pub fn policy(&self) -> &Policy {
        self.ruleset.primary()
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The policy as every event records it.
    pub fn policy_text(&self) -> &str {
        &self.policy_text
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Loads the script on every primary ahead of the first request (EVALSHA also reloads it
    /// on NOSCRIPT, e.g. after a Redis restart or failover).
    pub async fn load(&self, redis: &Client) -> Result<(), LimiterError> {
        self.script.load(redis).await?;
        if redis.is_clustered() && self.spans_slots {
            cluster::load(redis).await?;
        }
        Ok(())
    }

    /// Decides `request` atomically and records it on its partition's stream.
    pub async fn decide(
        &self,
        redis: &Client,
        request: &SmsRequest<'_>,
    ) -> Result<Decision, LimiterError> {
        self.decide_with(redis, request, &Context::default()).await
    }

    /// Decides `request` with what ingest knows of its destination and `Idempotency-Key`:
    /// blocked by `[destinations]` or `[clients]`, or judged by every rule, in one script (on
    /// Redis Cluster, a policy whose quotas span slots by the reserve/commit protocol of
    /// `cluster.rs` instead).
    pub async fn decide_with(
        &self,
        redis: &Client,
        request: &SmsRequest<'_>,
        context: &Context<'_>,
    ) -> Result<Decision, LimiterError> {
        if !redis.is_connected() {
            return Err(LimiterError::Disconnected);
        }
        match self.prepare(redis, request, context) {
            Prepared::Script {
                partition,
                keys,
                args,
                applies,
            } => {
                let reply = match &self.group_commit {
                    Some(group) => {
                        group
                            .decide(redis, &self.script, partition, (keys, args))
                            .await?
                    }
                    None => batch::call_one(redis, &self.script, (keys, args)).await?,
                };
                self.parse_reply(partition, reply, &applies)
            }
            Prepared::Protocol(plan) => {
                // Boxed: the protocol's futures are large, and every decision's future would
                // otherwise carry (and copy) their size, cluster or not.
                Box::pin(self.decide_by_protocol(redis, plan)).await
            }
        }
    }

    async fn decide_by_protocol(
        &self,
        redis: &Client,
        plan: Box<Plan>,
    ) -> Result<Decision, LimiterError> {
        let (partition, applies) = (plan.partition, applies_of(&plan));
        let reply = match cluster::hold(redis, &self.layout, self.timing, *plan).await? {
            Hold::Replay(reply) => reply,
            Hold::Held(held) => {
                let steps = cluster::Finish {
                    check_clock: true,
                    settle: true,
                };
                cluster::finish(redis, &self.layout, self.timing, *held, steps).await?
            }
        };
        self.parse_reply(partition, Value::Array(reply), &applies)
    }

    /// The first half of a decision by the reserve/commit protocol: reservations taken (or
    /// found full), nothing recorded. For tests that play a gateway killed or stalled between
    /// the steps; `decide_with` runs both halves. Refuses a request that the protocol would
    /// not decide (single Redis, a policy of the seed's rule alone, a blocked request).
    #[doc(hidden)]
    pub async fn hold_reservations(
        &self,
        redis: &Client,
        request: &SmsRequest<'_>,
        context: &Context<'_>,
    ) -> Result<HeldDecision, LimiterError> {
        match self.prepare(redis, request, context) {
            Prepared::Protocol(plan) => {
                match cluster::hold(redis, &self.layout, self.timing, *plan).await? {
                    Hold::Held(held) => Ok(*held),
                    Hold::Replay(_) => Err(LimiterError::Reply("a replayed answer".into())),
                }
            }
            Prepared::Script { .. } => Err(LimiterError::Reply(
                "this request is decided by one script, not by reservations".into(),
            )),
        }
    }

    /// The second half of [`RateLimiter::hold_reservations`], sent however late: without the
    /// gateway's own deadline, so only the fence can refuse it. Without `settle` the gateway
    /// dies right after recording, leaving its reservations for a reclaimer.
    #[doc(hidden)]
    pub async fn record_held(
        &self,
        redis: &Client,
        held: HeldDecision,
        settle: bool,
    ) -> Result<Decision, LimiterError> {
        let (partition, applies) = (held.plan.partition, applies_of(&held.plan));
        let steps = cluster::Finish {
            check_clock: false,
            settle,
        };
        let reply = cluster::finish(redis, &self.layout, self.timing, held, steps).await?;
        self.parse_reply(partition, Value::Array(reply), &applies)
    }

    /// The keys and arguments of `decide.lua`, or the plan of the reserve/commit protocol.
    fn prepare(&self, redis: &Client, request: &SmsRequest<'_>, context: &Context<'_>) -> Prepared {
        let id = Uuid::now_v7();
        // The address is written out once: it is the event's `ip`, and most often the client.
        let ip_text = ip_text(request.ip);
        let masked = self.ruleset.clients.masked_network(request.ip);
        let network = masked.as_deref().unwrap_or(&ip_text);
        let client = client_key_of(network, request.to);
        let blocked = self.ruleset.blocks(request.ip, &context.destination);
        let subject = Subject {
            network,
            ip_known: !context.ip_unattributed,
            to: request.to,
            country: context.destination.country,
            api_client: context.api_client,
        };
        let partition = self.layout.partition_of(&client);
        // A rule that does not apply to the request still passes a key (the script's keys are
        // positional) but is told to leave it alone.
        let applies: Vec<bool> = self
            .ruleset
            .rules()
            .iter()
            .map(|rule| rule.applies_to(&subject))
            .collect();
        let quotas: Vec<(u16, String)> = self
            .ruleset
            .rules()
            .iter()
            .map(|rule| {
                let value = rule.key_value(&subject).unwrap_or_default();
                self.layout.rule_quota(&rule.name, &value)
            })
            .collect();
        let stream = self.layout.stream(partition);
        let accepted_form = self.store.accepted();
        let accepted_message = accepted_form.apply(request.message);
        let refused_form = self.store.refused();
        let pending = encode_pending(&PendingEvent {
            v: SCHEMA_VERSION,
            id,
            ip: &ip_text,
            to: request.to,
            from: request.from,
            segments: request.segments,
            policy: &self.policy_text,
            reason: blocked.map(BlockReason::as_str),
            country: context.destination.country,
            client: masked.is_some().then_some(client.as_str()),
            status_callback: context.status_callback,
            api_client: context.api_client,
            ip_unattributed: context.ip_unattributed,
        });
        let idem_key = context.idempotency.map(|idem| {
            self.layout.key(
                partition,
                &format!("idem:{}", client_key_of(network, idem.key)),
            )
        });
        let fingerprint = context.idempotency.map_or("", |idem| idem.fingerprint);
        let body_key = self.layout.body(partition, &id);
        let body = if accepted_form == crate::privacy::StoredForm::Full || blocked.is_some() {
            ""
        } else {
            request.message
        };
        // On Redis Cluster one script can only touch one slot: the quotas of a policy whose
        // keys fall in several are decided by reservations in their own slots (cluster.rs). A
        // blocked request touches no quota, so it stays one script on the client's partition.
        if redis.is_clustered() && self.spans_slots && blocked.is_none() {
            let allowed = self.ruleset.clients.allowed(request.ip);
            let rules = self
                .ruleset
                .rules()
                .iter()
                .zip(quotas)
                .zip(&applies)
                .map(|((rule, (_, quota)), applies)| RulePlan {
                    applies: *applies,
                    enforced: rule.mode == Mode::Enforce && !allowed,
                    quota,
                    windows: rule
                        .limits
                        .windows()
                        .iter()
                        .map(|w| WindowPlan {
                            name: rule.window_name(w),
                            limit: w.limit,
                            micros: w.duration_micros(),
                        })
                        .collect(),
                })
                .collect();
            return Prepared::Protocol(Box::new(Plan {
                id,
                partition,
                rules,
                stream,
                body_key,
                idem_key,
                fingerprint: fingerprint.to_owned(),
                pending,
                accepted_message: accepted_message.into_owned(),
                accepted_form: accepted_form.as_str(),
                refused_message: refused_form.apply(request.message).into_owned(),
                refused_form: refused_form.as_str(),
                body: body.to_owned(),
                body_ttl_ms: self.body_ttl_ms,
                longest_micros: i64::try_from(self.ruleset.longest().as_micros())
                    .unwrap_or(i64::MAX),
            }));
        }
        let mut keys = Vec::with_capacity(quotas.len() + 2);
        keys.push(stream);
        if blocked.is_none() {
            keys.extend(quotas.into_iter().map(|(_, key)| key));
        }
        keys.extend(idem_key);
        // Last, whatever came before: where an accepted body waits for the dispatcher (written
        // only when the event does not carry the body itself).
        keys.push(body_key);
        let refused_message = refused_form.apply(request.message);
        let refused = encode_stored(&StoredMessage {
            message: &refused_message,
            stored: refused_form.as_str(),
        });
        let accepted = encode_stored(&StoredMessage {
            message: &accepted_message,
            stored: accepted_form.as_str(),
        });
        // The script's ARGV[3]: a letter per rule, the allow-list's, the pending entries' count.
        let mut flags: Vec<u8> = applies
            .iter()
            .map(|a| if *a { b'y' } else { b'n' })
            .collect();
        flags.push(match self.ruleset.clients.allowed(request.ip) {
            true => b'a',
            false => b'-',
        });
        flags.push(u8::try_from(pending.entries).expect("an event has fewer than 256 fields"));
        let reason = blocked.map_or("", BlockReason::as_str);
        let reason_and_fingerprint = match (reason, fingerprint) {
            ("", "") => String::new(),
            _ => format!("{reason}\n{fingerprint}"),
        };
        let mut uuid_text = Uuid::encode_buffer();
        let args = vec![
            Value::Bytes(pending.bytes.into()),
            Value::from(&*id.as_hyphenated().encode_lower(&mut uuid_text)),
            Value::Bytes(flags.into()),
            Value::Bytes(refused.bytes.into()),
            Value::Bytes(accepted.bytes.into()),
            Value::from(body),
            Value::from(reason_and_fingerprint),
        ];
        Prepared::Script {
            partition,
            keys,
            args,
            applies,
        }
    }

    /// A decision's reply: decide.lua's one string, or a table (record.lua's, an answer
    /// stored before replies were strings, a conflict, a failed decision of a batch).
    fn parse_reply(
        &self,
        partition: u16,
        reply: Value,
        applies: &[bool],
    ) -> Result<Decision, LimiterError> {
        let items = match reply {
            Value::Array(items) => items,
            packed => return self.parse_packed(partition, &packed, applies),
        };
        // A string answer replayed through the cluster's begin.lua arrives as a table of one.
        if let [packed] = items.as_slice()
            && packed.as_bytes().is_some()
        {
            return self.parse_packed(partition, packed, applies);
        }
        let int = |i: usize| -> Result<i64, LimiterError> {
            items
                .get(i)
                .and_then(Value::as_i64)
                .ok_or_else(|| LimiterError::Reply(format!("value {i} is {:?}", items.get(i))))
        };
        let text = |i: usize| -> Result<String, LimiterError> {
            items
                .get(i)
                .and_then(|v| v.as_str().map(|s| s.to_string()))
                .ok_or_else(|| LimiterError::Reply(format!("value {i} is not a string")))
        };
        let outcome = match int(0)? {
            -1 => return Err(LimiterError::IdempotencyConflict),
            -2 => {
                return Err(LimiterError::Reply(format!(
                    "the decision failed: {}",
                    text(1)?
                )));
            }
            other => outcome_of(other)?,
        };
        // Per window: remaining, reset_after, retry_after; a replayed answer of an older
        // policy has other windows, and keeps its outcome only.
        let slots = match items.len() == 7 + 3 * self.windows.len() {
            true => (7..items.len()).map(int).collect::<Result<_, _>>()?,
            false => Vec::new(),
        };
        Ok(Decision {
            id: Uuid::parse_str(&text(5)?)
                .map_err(|e| LimiterError::Reply(format!("event id: {e}")))?,
            outcome,
            at_us: int(1)?,
            retry_after: u64::try_from(int(2)?).unwrap_or(0),
            partition,
            stream_id: text(3)?,
            windows: self.windows_of(outcome, &slots, applies),
            reason: BlockReason::parse(&text(6)?),
            replayed: int(4)? == 1,
        })
    }

    /// decide.lua's reply (see its header): the replayed byte, big-endian i64s, then the
    /// stream id, event id and blocked reason, one per line.
    fn parse_packed(
        &self,
        partition: u16,
        packed: &Value,
        applies: &[bool],
    ) -> Result<Decision, LimiterError> {
        let malformed = || LimiterError::Reply(format!("a malformed reply: {packed:?}"));
        let bytes = packed.as_bytes().ok_or_else(malformed)?;
        let int = |i: usize| -> Option<i64> {
            let at = 1 + 8 * i;
            Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let outcome = outcome_of(int(0).ok_or_else(malformed)?)?;
        let windows = match outcome {
            Outcome::Blocked => 0,
            _ => self.windows.len(),
        };
        let slots: Vec<i64> = (3..3 + 3 * windows)
            .map(int)
            .collect::<Option<_>>()
            .ok_or_else(malformed)?;
        let tail = bytes.get(25 + 24 * windows..).ok_or_else(malformed)?;
        let mut lines = std::str::from_utf8(tail)
            .map_err(|_| malformed())?
            .split('\n');
        let (Some(stream_id), Some(id), Some(reason), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed());
        };
        Ok(Decision {
            id: Uuid::parse_str(id).map_err(|e| LimiterError::Reply(format!("event id: {e}")))?,
            outcome,
            at_us: int(1).ok_or_else(malformed)?,
            retry_after: u64::try_from(int(2).ok_or_else(malformed)?).unwrap_or(0),
            partition,
            stream_id: stream_id.to_owned(),
            windows: self.windows_of(outcome, &slots, applies),
            reason: BlockReason::parse(reason),
            replayed: bytes.first() == Some(&1),
        })
    }

    /// The windows a reply's `slots` (three per window, in policy order) describe; none when
    /// blocked or when the slots are not this policy's.
    fn windows_of(&self, outcome: Outcome, slots: &[i64], applies: &[bool]) -> Vec<WindowState> {
        if outcome == Outcome::Blocked || slots.len() != 3 * self.windows.len() {
            return Vec::new();
        }
        self.windows
            .iter()
            .zip(slots.chunks_exact(3))
            .map(|(w, slot)| WindowState {
                name: w.name.clone(),
                rule: w.rule.clone(),
                enforced: w.enforce && applies.get(w.rule_index) == Some(&true),
                limit: w.limit,
                window_secs: w.window_secs,
                remaining: u32::try_from(slot[0]).unwrap_or(0),
                reset_after: u64::try_from(slot[1]).unwrap_or(0),
                retry_after: u64::try_from(slot[2]).unwrap_or(0),
                shadow_violated: slot[2] < 0,
            })
            .collect()
    }
}

/// `ip` as `Display` writes it; an IPv4 address (most clients) without the formatting
/// machinery, which costs a request more than a kilo-instruction for four small numbers.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
    text
}

/// A reply's outcome code.
fn outcome_of(code: i64) -> Result<Outcome, LimiterError> {
    match code {
        1 => Ok(Outcome::Accepted),
        0 => Ok(Outcome::Rejected),
        2 => Ok(Outcome::Blocked),
        other => Err(LimiterError::Reply(format!("outcome {other}"))),
    }
}

/// How `prepare` decides a request: `decide.lua` on one partition, or the reserve/commit
/// protocol across slots.
enum Prepared {
    Script {
        partition: u16,
        keys: Vec<String>,
        args: Vec<Value>,
        applies: Vec<bool>,
    },
    /// Boxed: a plan carries the whole request, the script variant only its arguments.
    Protocol(Box<Plan>),
}

fn applies_of(plan: &Plan) -> Vec<bool> {
    plan.rules.iter().map(|r| r.applies).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "10.0.100.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    /// Against a real Redis (`REDIS_URL`): one call deciding three requests, the middle one's
    /// quota a key of the wrong type.
    #[tokio::test]
    async fn a_request_that_fails_inside_a_batch_fails_alone() {
        use fred::interfaces::KeysInterface;
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let pool = crate::connection::connect(&url, 1, std::time::Duration::from_secs(5))
            .await
            .expect("redis");
        let redis = pool.next();
        let namespace = format!("test-{}", Uuid::now_v7().simple());
        let limiter = RateLimiter::new(
            Policy::parse("3/1m").expect("policy"),
            Layout::new(namespace.clone(), 1),
        );
        let mut batch = Vec::new();
        let mut applies = Vec::new();
        for to in ["+14155550101", "+14155550102", "+14155550103"] {
            let request = SmsRequest {
                ip: "192.0.2.7".parse().expect("ip"),
                to,
                from: None,
                message: "hello",
                segments: 1,
            };
            let Prepared::Script {
                keys,
                args,
                applies: flags,
                ..
            } = limiter.prepare(redis, &request, &Context::default())
            else {
                panic!("one script decides the seed's rule");
            };
            batch.push((keys, args));
            applies.push(flags);
        }
        let poisoned = batch[1].0[1].clone();
        let _: () = redis
            .set(&poisoned, "not a sorted set", None, None, false)
            .await
            .expect("set");
        let replies = batch::call(redis, &limiter.script, batch)
            .await
            .expect("call");
        assert_eq!(replies.len(), 3);
        let decisions: Vec<_> = replies
            .into_iter()
            .zip(&applies)
            .map(|(reply, applies)| limiter.parse_reply(0, reply, applies))
            .collect();
        assert_eq!(
            decisions[0].as_ref().expect("first").outcome,
            Outcome::Accepted
        );
        match &decisions[1] {
            Err(LimiterError::Reply(message)) => {
                assert!(message.contains("WRONGTYPE"), "{message}")
            }
            other => panic!("the poisoned request: {other:?}"),
        }
        assert_eq!(
            decisions[2].as_ref().expect("third").outcome,
            Outcome::Accepted
        );
        crate::connection::drop_namespace(redis, &namespace)
            .await
            .expect("drop");
    }

    #[test]
    fn names_reach_the_script_as_inert_lua_literals() {
        assert_eq!(lua_string(b"rule.1m"), "'rule.1m'");
        assert_eq!(lua_string(b"a'b\\c\n]]"), "'a\\039b\\092c\\010]]'");
    }

    #[test]
    fn the_policy_is_written_into_the_script() {
        let seed = RateLimiter::new(Policy::parse("3/1m,10/1d").unwrap(), Layout::default());
        let other = RateLimiter::new(Policy::parse("5/1m").unwrap(), Layout::default());
        let lua = decide_script(seed.ruleset(), 1000);
        assert!(
            lua.starts_with(
                "local RULES = {1, '1000', '>i8i8i8i8i8i8', 17,\n  true, 86400000000, '86401000', 2,\n    3, 60000000, \
                 '1m', '\\1621m',\n    10, 86400000000, '1d', '\\1621d',\n  0, 0, 0, 0, 0, 0,\n}\n"
            ),
            "{lua}"
        );
        assert_ne!(seed.script.sha1(), other.script.sha1());
    }
}
