//! The decision of a policy whose quotas live in several slots of a Redis Cluster: reserve on
//! every rule's quota in its own slot, record the event on the client's partition, then commit
//! or release each reservation. One script cannot touch keys of several slots, so the single
//! atomic step of `decide.lua` becomes this protocol; it never admits more than a rule allows,
//! and after a crash between its steps it under-admits for at most a lease.
//!
//! The steps (each a small Lua script of `cluster/`, run by EVALSHA and reloaded on NOSCRIPT):
//! 1. `begin.lua` on the client's partition: the decision time T (that node's `TIME`) and the
//!    first answer of a repeated `Idempotency-Key`.
//! 2. `reserve.lua` on each applicable rule's quota, in parallel, at T: the request becomes a
//!    quota member (score T) with a lease record (`<quota>:leases`, member `<id>@<partition>`,
//!    score = lease end) if every window has room counting every member, reservations of
//!    requests in flight included. A window filled by committed members decided at or before T
//!    is *full*: that answer cannot change, so it refuses (or, for a shadow rule, is recorded
//!    as a would-be refusal). A quota that already holds a member decided after T is *late*:
//!    the request releases what it reserved and decides again at once at a new T, so every
//!    quota takes its members in the order of their decision times and each decision sees
//!    every earlier one. A window full only with reservations is *busy*: the request releases what it reserved, waits a few ms and decides
//!    again at a new T, for at most the patience ([`ClusterTiming::patience`]), after which it gives up
//!    with [`LimiterError::Contended`] (a 503: it could not be decided in time). Expired leases
//!    found on the way are reclaimed first (step 4).
//! 3. `record.lua` on the client's partition: refuses a fenced id, answers a repeated
//!    `Idempotency-Key` with its first answer (the loser releases its reservations), else
//!    appends the event (at_us = T) and, when accepted, marks the id *recorded*. The gateway
//!    refuses to send it once it has held its reservations for half the lease by its own
//!    monotonic clock ([`LimiterError::LeaseExpired`]), so a stalled process does not record
//!    late; the fence below makes that safe even when the record arrives late all the same.
//! 4. `settle.lua` per quota: commit (drop the lease record, the member stays and counts as
//!    accepted) or release (drop both). A reclaimer that finds a lease that ended runs
//!    `fence.lua` on the event's partition first: the id is either recorded (commit it) or now
//!    fenced (release it; record.lua will refuse it), never both.
//!
//! Why no rule is ever exceeded: every quota holds at most `limit` members (committed or
//! reserved) in any window, because a member is added only when the members of every later
//! window it falls in, counted from T - d on (members decided after T included), leave room.
//! An accepted event's members stay in its quotas until they age out of every window: its own
//! gateway only releases what it did not record as accepted, and a reclaimer only releases an
//! id it fenced, which record.lua then refuses. So the accepted events of a rule's key in any
//! window are at most its members there. The recorded mark and the fence live as long as a
//! member can count (the policy's longest window plus the lease). Why decisions match the
//! sequential model: a window refuses only on committed members decided before T, which
//! nothing in flight can change, and anything undecided waits for a later T.
//!
//! Under-admission: a process killed after reserving leaves its reservations counted in their
//! quotas until the lease ends and the next reservation on that quota reclaims them; a rule
//! under-admits by at most those reservations, for at most the lease (default 5 s) plus the
//! time until the next request touches that quota.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::KeysInterface;
use fred::types::Value;
use fred::types::scripts::Script;
use futures::future::join_all;
use uuid::Uuid;

use crate::codec::PendingFields;
use crate::gate::LimiterError;
use crate::layout::Layout;

/// One of the protocol's scripts (fred's: the SHA-1 computed once, EVALSHA, a load on every
/// primary and one retry on NOSCRIPT), built on first use.
macro_rules! script {
    ($source:expr) => {
        LazyLock::new(|| Script::from_lua($source))
    };
}

static BEGIN: LazyLock<Script> = script!(concat!(
    include_str!("prelude.lua"),
    include_str!("cluster/begin.lua")
));
static RESERVE: LazyLock<Script> = script!(include_str!("cluster/reserve.lua"));
static RECORD: LazyLock<Script> = script!(concat!(
    include_str!("prelude.lua"),
    include_str!("cluster/record.lua")
));
static SETTLE: LazyLock<Script> = script!(include_str!("cluster/settle.lua"));
static FENCE: LazyLock<Script> = script!(include_str!("cluster/fence.lua"));

/// Loads every script of the protocol on every primary.
pub(crate) async fn load(redis: &Client) -> Result<(), LimiterError> {
    for script in [&BEGIN, &RESERVE, &RECORD, &SETTLE, &FENCE] {
        script.load(redis).await?;
    }
    Ok(())
}

async fn eval<R: fred::types::FromValue>(
    redis: &Client,
    script: &Script,
    keys: Vec<String>,
    args: Vec<Value>,
) -> Result<R, LimiterError> {
    Ok(script.evalsha_with_reload(redis, keys, args).await?)
}

/// How long reservations may be held, and how long a request waits for others in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterTiming {
    /// How long a reservation stays counted when its gateway never settles it (a crash): the
    /// bound of under-admission. The gateway records only within half of it.
    pub lease: Duration,
    /// How long a request waits, in total (the pauses between its attempts, not the commands'
    /// own time), for quotas that are full only of reservations in flight before it gives up
    /// with [`LimiterError::Contended`].
    pub patience: Duration,
}

impl Default for ClusterTiming {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(5),
            patience: Duration::from_secs(1),
        }
    }
}

impl ClusterTiming {
    fn lease_micros(&self) -> i64 {
        i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX)
    }

    /// The gateway's own deadline for recording: half the lease, so a record sent in time
    /// reaches Redis long before a reclaimer may fence it.
    fn record_deadline(&self) -> Duration {
        self.lease / 2
    }
}

/// One window of a rule, as the scripts need it.
#[derive(Clone, Debug)]
pub(crate) struct WindowPlan {
    /// As headers and events name it (`number.1m`).
    pub name: String,
    pub limit: u32,
    pub micros: i64,
}

/// One rule of the policy for one request.
#[derive(Clone, Debug)]
pub(crate) struct RulePlan {
    /// False when the request lacks a dimension of the rule's key: nothing is reserved.
    pub applies: bool,
    /// False for a shadow rule and for every rule of an allow-listed client.
    pub enforced: bool,
    pub quota: String,
    pub windows: Vec<WindowPlan>,
}

/// Everything the protocol writes for one request, owned so that a held decision can outlive
/// the request (see [`HeldDecision`]).
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub id: Uuid,
    /// The client's partition: the event, its body, the Idempotency-Key record, the recorded
    /// mark and the fence live there.
    pub partition: u16,
    pub rules: Vec<RulePlan>,
    pub stream: String,
    pub body_key: String,
    pub idem_key: Option<String>,
    pub fingerprint: String,
    pub pending: PendingFields,
    /// The body as an accepted request keeps it, and the name of that form.
    pub accepted_message: String,
    pub accepted_form: &'static str,
    pub refused_message: String,
    pub refused_form: &'static str,
    pub body: String,
    pub body_ttl_ms: u64,
    /// The policy's longest window, µs: how long a quota member can count.
    pub longest_micros: i64,
}

impl Plan {
    fn lease_member(&self) -> String {
        lease_member(&self.id.to_string(), self.partition)
    }
}

fn lease_member(id: &str, partition: u16) -> String {
    format!("{id}@{partition}")
}

fn recorded_key(layout: &Layout, partition: u16, id: &str) -> String {
    layout.key(partition, &format!("lease:{id}:recorded"))
}

fn fence_key(layout: &Layout, partition: u16, id: &str) -> String {
    layout.key(partition, &format!("lease:{id}:fenced"))
}

/// What `reserve.lua` answered for one window: members counted, the oldest of them, and the
/// wait until one more fits when committed members alone fill it (else -1).
#[derive(Clone, Copy, Debug)]
struct WindowCount {
    count: i64,
    oldest: i64,
    wait: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Reserved,
    Full,
    Busy,
}

#[derive(Clone, Debug)]
enum Answer {
    /// Leases that ended, to reclaim before deciding.
    Expired(Vec<String>),
    /// The quota holds a decision later than T: decide again at a new T.
    Late,
    Counted(Status, Vec<WindowCount>),
}

/// A decision whose quotas are reserved (or found full) but not yet recorded: the state
/// between steps 2 and 3. Tests hold one to play a process that dies or stalls there.
#[derive(Debug)]
pub struct HeldDecision {
    pub(crate) plan: Plan,
    now: i64,
    accepted: bool,
    /// Per rule: what its quota answered (`None` when the rule does not apply).
    answers: Vec<Option<(Status, Vec<WindowCount>)>>,
    since: Instant,
}

impl HeldDecision {
    pub fn id(&self) -> Uuid {
        self.plan.id
    }

    /// Whether every enforced rule had room (the reservations are held), or some refused.
    pub fn accepted(&self) -> bool {
        self.accepted
    }
}

pub(crate) enum Hold {
    /// An earlier answer to the same `Idempotency-Key` (or {-1}), in decide.lua's format.
    Replay(Vec<Value>),
    Held(Box<HeldDecision>),
}

/// How many rounds in a row may go again at once, without waiting: rounds that only reclaim
/// ended leases (each reclaims at least one) and rounds that came too late (a quota already
/// holds a later decision, and each new T is later). Never reached unless a node keeps
/// answering the same.
const MAX_IMMEDIATE_ROUNDS: u32 = 64;

/// Steps 1 and 2: decides the request at some T, holding its reservations.
pub(crate) async fn hold(
    redis: &Client,
    layout: &Layout,
    timing: ClusterTiming,
    plan: Plan,
) -> Result<Hold, LimiterError> {
    // Patience counts the time spent waiting for others, not the commands' own time: a burst
    // that queues commands must not turn into 503s by itself. With waits doubling up to 40 ms,
    // a request gives up after some 30 rounds at most.
    let mut waited = Duration::ZERO;
    let mut backoff = Duration::from_millis(2);
    let member = plan.lease_member();
    let id = plan.id.to_string();
    let mut attempt = 0_u32;
    let mut immediate = 0_u32;
    loop {
        attempt = attempt.wrapping_add(1);
        let (key, fingerprint) = match &plan.idem_key {
            Some(idem) => (idem.clone(), plan.fingerprint.as_str()),
            None => (plan.stream.clone(), ""),
        };
        let begin: Vec<Value> = eval(redis, &BEGIN, vec![key], vec![fingerprint.into()]).await?;
        if begin.first().and_then(|v| v.as_str()).as_deref() != Some("go") {
            return Ok(Hold::Replay(begin));
        }
        let now = begin
            .get(1)
            .and_then(Value::as_i64)
            .ok_or_else(|| LimiterError::Reply(format!("begin answered {begin:?}")))?;
        let since = Instant::now();
        let results = join_all(plan.rules.iter().map(|rule| async {
            if !rule.applies {
                return Ok(None);
            }
            reserve(redis, timing, &plan, rule, &id, &member, now)
                .await
                .map(Some)
        }))
        .await;
        let reserved: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Ok(Some(Answer::Counted(Status::Reserved, _)))))
            .map(|(i, _)| i)
            .collect();
        let mut answers = Vec::with_capacity(results.len());
        let mut failure = None;
        for result in results {
            match result {
                Ok(answer) => answers.push(answer),
                Err(e) => {
                    failure.get_or_insert(e);
                    answers.push(None);
                }
            }
        }
        if let Some(e) = failure {
            release(redis, &plan, &reserved).await;
            return Err(e);
        }
        let mut undecided = false;
        let mut reclaimed = false;
        let mut late = false;
        for (rule, answer) in plan.rules.iter().zip(&answers) {
            match answer {
                Some(Answer::Expired(members)) => {
                    if let Err(e) = reclaim(redis, layout, timing, rule, members, &plan).await {
                        release(redis, &plan, &reserved).await;
                        return Err(e);
                    }
                    reclaimed = true;
                }
                Some(Answer::Counted(Status::Busy, _)) => undecided = true,
                Some(Answer::Late) => late = true,
                _ => {}
            }
        }
        if undecided || reclaimed || late {
            // Holding some quotas while waiting for others could keep two requests waiting on
            // each other; let go of everything and decide again at a new T.
            release(redis, &plan, &reserved).await;
            // Rounds that reclaimed or came late do not wait; the cap keeps them finite.
            let at_once = (reclaimed || late) && !undecided;
            immediate = if at_once { immediate + 1 } else { 0 };
            if waited >= timing.patience || immediate >= MAX_IMMEDIATE_ROUNDS {
                return Err(LimiterError::Contended);
            }
            if !at_once {
                let micros = u64::try_from(backoff.as_micros()).unwrap_or(u64::MAX);
                // The id's random bits spread the waits of requests that collided.
                let bits = (plan.id.as_u128() as u64).rotate_left(attempt.wrapping_mul(11));
                let pause = backoff / 2 + Duration::from_micros(bits % micros.max(1));
                tokio::time::sleep(pause).await;
                waited += pause;
                backoff = (backoff * 2).min(Duration::from_millis(40));
            }
            continue;
        }
        let answers: Vec<Option<(Status, Vec<WindowCount>)>> = answers
            .into_iter()
            .map(|a| match a {
                Some(Answer::Counted(status, windows)) => Some((status, windows)),
                _ => None,
            })
            .collect();
        let accepted = plan
            .rules
            .iter()
            .zip(&answers)
            .all(|(rule, a)| !(rule.enforced && matches!(a, Some((Status::Full, _)))));
        return Ok(Hold::Held(Box::new(HeldDecision {
            plan,
            now,
            accepted,
            answers,
            since,
        })));
    }
}

async fn reserve(
    redis: &Client,
    timing: ClusterTiming,
    plan: &Plan,
    rule: &RulePlan,
    id: &str,
    member: &str,
    now: i64,
) -> Result<Answer, LimiterError> {
    let ttl_ms = (plan.longest_micros + timing.lease_micros()) / 1000 + 1000;
    let mut args: Vec<Value> = vec![
        id.into(),
        member.into(),
        now.to_string().into(),
        timing.lease_micros().to_string().into(),
        ttl_ms.to_string().into(),
        rule.windows.len().to_string().into(),
    ];
    for w in &rule.windows {
        args.push(w.limit.to_string().into());
        args.push(w.micros.to_string().into());
    }
    let keys = vec![rule.quota.clone(), Layout::leases_of(&rule.quota)];
    let reply: Vec<Value> = eval(redis, &RESERVE, keys, args).await?;
    let int = |i: usize| {
        reply
            .get(i)
            .and_then(Value::as_i64)
            .ok_or_else(|| LimiterError::Reply(format!("reserve answered {reply:?}")))
    };
    let status = match int(0)? {
        3 => {
            let members = reply[1..]
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.to_string()))
                .collect();
            return Ok(Answer::Expired(members));
        }
        4 => return Ok(Answer::Late),
        1 => Status::Reserved,
        0 => Status::Full,
        2 => Status::Busy,
        other => return Err(LimiterError::Reply(format!("reserve status {other}"))),
    };
    let mut windows = Vec::with_capacity(rule.windows.len());
    for i in 0..rule.windows.len() {
        windows.push(WindowCount {
            count: int(1 + 3 * i)?,
            oldest: int(2 + 3 * i)?,
            wait: int(3 + 3 * i)?,
        });
    }
    Ok(Answer::Counted(status, windows))
}

/// Step 4 for leases that ended: fence each id on its event's partition, then commit what was
/// recorded and release what was not.
async fn reclaim(
    redis: &Client,
    layout: &Layout,
    timing: ClusterTiming,
    rule: &RulePlan,
    members: &[String],
    plan: &Plan,
) -> Result<(), LimiterError> {
    let ttl_ms = mark_ttl_ms(plan, timing);
    for member in members {
        let (id, partition) = member
            .rsplit_once('@')
            .and_then(|(id, p)| Some((id, p.parse::<u16>().ok()?)))
            .ok_or_else(|| LimiterError::Reply(format!("lease member {member:?}")))?;
        let recorded: i64 = eval(
            redis,
            &FENCE,
            vec![
                recorded_key(layout, partition, id),
                fence_key(layout, partition, id),
            ],
            vec![ttl_ms.to_string().into()],
        )
        .await?;
        let how = if recorded == 1 { "c" } else { "r" };
        tracing::warn!(
            id,
            quota = rule.quota,
            settled = if recorded == 1 {
                "committed"
            } else {
                "released"
            },
            "reclaimed a reservation whose lease ended (its gateway died or stalled)"
        );
        settle(redis, &rule.quota, id, member, how).await?;
    }
    Ok(())
}

/// How long the recorded mark and the fence must last: as long as a quota member can count
/// (its decision time plus the longest window), counted from up to a lease later, and a minute
/// for the clocks of the nodes to disagree.
fn mark_ttl_ms(plan: &Plan, timing: ClusterTiming) -> i64 {
    (plan.longest_micros + timing.lease_micros()) / 1000 + 60_000
}

async fn settle(
    redis: &Client,
    quota: &str,
    id: &str,
    member: &str,
    how: &str,
) -> Result<(), LimiterError> {
    eval::<i64>(
        redis,
        &SETTLE,
        vec![quota.to_owned(), Layout::leases_of(quota)],
        vec![id.into(), member.into(), how.into()],
    )
    .await?;
    Ok(())
}

/// Settles the reservations of `rules` (indices into the plan) one way; a failure only leaves
/// a reservation for its lease to end, so it is logged, not returned.
async fn settle_all(redis: &Client, plan: &Plan, rules: &[usize], how: &str) -> bool {
    let id = plan.id.to_string();
    let member = plan.lease_member();
    let results = join_all(
        rules
            .iter()
            .map(|&r| settle(redis, &plan.rules[r].quota, &id, &member, how)),
    )
    .await;
    let mut all = true;
    for e in results.into_iter().filter_map(Result::err) {
        all = false;
        tracing::warn!(error = %e, id, "a reservation stays until its lease ends");
    }
    all
}

async fn release(redis: &Client, plan: &Plan, rules: &[usize]) {
    if !rules.is_empty() {
        settle_all(redis, plan, rules, "r").await;
    }
}

fn seconds_up(micros: i64) -> i64 {
    (micros.max(0) + 999_999) / 1_000_000
}

/// Which parts of steps 3 and 4 run: all of them, except in tests that play a gateway which
/// stalls past its deadline (`check_clock` off, so the fence must refuse the late record) or
/// dies right after recording (`settle` off, so a reclaimer must commit).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finish {
    /// Refuse once the reservations were held for longer than the gateway's deadline.
    pub check_clock: bool,
    /// Commit the reservations of an accepted request once recorded.
    pub settle: bool,
}

/// Steps 3 and 4: records the held decision and settles its reservations.
pub(crate) async fn finish(
    redis: &Client,
    layout: &Layout,
    timing: ClusterTiming,
    held: HeldDecision,
    steps: Finish,
) -> Result<Vec<Value>, LimiterError> {
    let Finish {
        check_clock,
        settle,
    } = steps;
    let HeldDecision {
        plan,
        now,
        accepted,
        answers,
        since,
    } = held;
    let reserved: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Some((Status::Reserved, _))))
        .map(|(i, _)| i)
        .collect();
    if !accepted {
        // A refused request consumes nothing: free its slots before anyone waits on them.
        release(redis, &plan, &reserved).await;
    } else if check_clock && since.elapsed() >= timing.record_deadline() {
        release(redis, &plan, &reserved).await;
        return Err(LimiterError::LeaseExpired);
    }
    let mut violated = Vec::new();
    let mut shadow = Vec::new();
    let mut triples = Vec::new();
    let mut retry_us = 0_i64;
    for (rule, answer) in plan.rules.iter().zip(&answers) {
        let Some((status, counts)) = answer else {
            for w in &rule.windows {
                triples.extend([i64::from(w.limit), 0, 0]);
            }
            continue;
        };
        let counted = accepted && *status == Status::Reserved;
        for (w, c) in rule.windows.iter().zip(counts) {
            let used = c.count + i64::from(counted);
            let oldest = if c.oldest >= 0 {
                Some(c.oldest)
            } else {
                counted.then_some(now)
            };
            let reset = oldest.map_or(0, |o| seconds_up(o + w.micros - now));
            let mut retry = 0;
            if c.wait >= 0 {
                if rule.enforced {
                    retry = seconds_up(c.wait);
                    retry_us = retry_us.max(c.wait);
                    violated.push(w.name.clone());
                } else {
                    // A shadow window reports its would-be wait negated: it refuses nothing.
                    retry = -seconds_up(c.wait);
                    shadow.push(w.name.clone());
                }
            }
            triples.extend([(i64::from(w.limit) - used).max(0), reset, retry]);
        }
    }
    let retry_after = if accepted { 0 } else { seconds_up(retry_us) };
    let id = plan.id.to_string();
    let mut args: Vec<Value> = vec![
        Value::Bytes(plan.pending.bytes.clone().into()),
        id.as_str().into(),
        if accepted { "1" } else { "0" }.into(),
        now.to_string().into(),
        retry_after.to_string().into(),
        plan.fingerprint.as_str().into(),
        plan.refused_message.as_str().into(),
        plan.refused_form.into(),
        plan.body.as_str().into(),
        plan.body_ttl_ms.to_string().into(),
        mark_ttl_ms(&plan, timing).to_string().into(),
        plan.pending.entries.to_string().into(),
        plan.accepted_message.as_str().into(),
        plan.accepted_form.into(),
        violated.len().to_string().into(),
    ];
    args.extend(violated.iter().map(|v| Value::from(v.as_str())));
    args.push(shadow.len().to_string().into());
    args.extend(shadow.iter().map(|v| Value::from(v.as_str())));
    args.extend(triples.iter().map(|t| Value::from(t.to_string())));
    let mark = recorded_key(layout, plan.partition, &id);
    let mut keys = vec![
        plan.stream.clone(),
        fence_key(layout, plan.partition, &id),
        mark.clone(),
        plan.body_key.clone(),
    ];
    keys.extend(plan.idem_key.clone());
    // On an error the record may or may not have run: the reservations stay for the fence to
    // decide after their lease (committed if recorded, released if not), never released here.
    let reply: Vec<Value> = eval(redis, &RECORD, keys, args).await?;
    let first = reply.first().and_then(Value::as_i64);
    let replayed = reply.get(4).and_then(Value::as_i64) == Some(1);
    if first == Some(-2) {
        release(redis, &plan, &reserved).await;
        return Err(LimiterError::LeaseExpired);
    }
    if first == Some(-1) || replayed {
        // A concurrent repeat of the same Idempotency-Key recorded first: its answer stands.
        if accepted {
            release(redis, &plan, &reserved).await;
        }
        return Ok(reply);
    }
    if accepted && settle && settle_all(redis, &plan, &reserved, "c").await {
        // Every lease record is gone, so no reclaimer will ask for the mark any more.
        if let Err(e) = redis.del::<i64, _>(&mark).await {
            tracing::debug!(error = %e, "the recorded mark expires by itself");
        }
    }
    Ok(reply)
}
