//! Group commit: the decisions of one partition that arrive while its previous `decide.lua`
//! calls are under way go to Redis together, as one call, so a busy gateway pays one round
//! trip, one write, one read and one script start for many requests instead of one each.
//!
//! Nothing waits on purpose: a request that finds fewer than [`IN_FLIGHT`] calls under way on
//! its partition is sent at once, alone; only while that many are out do requests queue, and
//! the next call takes all of them (up to [`MAX_BATCH`]). Each request is still decided on its
//! own, exactly as if it came alone (`decide.lua` runs them in arrival order inside one atomic
//! step), and each caller gets its own reply. The calls run in tasks of their own, so a
//! caller that gives up (a timeout, a closed connection) abandons only its own answer, never
//! the batch it is in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fred::clients::Client;
use fred::types::Value;
use fred::types::scripts::Script;
use tokio::sync::oneshot;

use crate::gate::LimiterError;

/// Calls under way per partition before requests queue for the next one: one being decided
/// while the other travels.
pub const IN_FLIGHT: usize = 2;

/// The most requests one call decides, so one call holds Redis for a bounded time (about a
/// millisecond with the 4-rule policy) and its arguments stay small.
pub const MAX_BATCH: usize = 32;

/// Requests per `decide.lua` call under group commit (a histogram; `docs/metrics.md`).
pub const BATCH_SIZE: &str = "smsgate_decide_batch_size";

/// Bucket bounds for [`BATCH_SIZE`]: powers of two up to [`MAX_BATCH`].
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

/// One request's keys and arguments, as `decide.lua` takes them for a single request.
pub(crate) type Request = (Vec<String>, Vec<Value>);

/// Queues per partition, shared by every clone of a `RateLimiter`.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    lanes: Vec<Mutex<Lane>>,
    /// Calls sent, and the requests they decided: their ratio is the mean batch.
    calls: AtomicU64,
    decided: AtomicU64,
}

#[derive(Debug, Default)]
struct Lane {
    waiting: Vec<Waiting>,
    /// Calls under way (each a task draining `waiting` until it is empty).
    in_flight: usize,
}

#[derive(Debug)]
struct Waiting {
    request: Request,
    answer: oneshot::Sender<Result<Value, LimiterError>>,
}

impl GroupCommit {
    pub(crate) fn new(partitions: u16) -> Self {
        Self {
            lanes: (0..partitions.max(1))
                .map(|_| Mutex::new(Lane::default()))
                .collect(),
            calls: AtomicU64::new(0),
            decided: AtomicU64::new(0),
        }
    }

    /// Calls sent so far, and the requests they decided.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.decided.load(Ordering::Relaxed),
        )
    }

    /// Decides `request` on `partition`: in the next call that leaves, which this request
    /// starts itself when fewer than [`IN_FLIGHT`] are under way.
    pub(crate) async fn decide(
        self: &Arc<Self>,
        redis: &Client,
        script: &Arc<Script>,
        partition: u16,
        request: Request,
    ) -> Result<Value, LimiterError> {
        let lane = usize::from(partition).min(self.lanes.len() - 1);
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lanes[lane]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push(Waiting { request, answer });
            let start = queue.in_flight < IN_FLIGHT;
            if start {
                queue.in_flight += 1;
            }
            start
        };
        if start {
            let sender = Sender {
                group: Arc::clone(self),
                lane,
                redis: redis.clone(),
                script: Arc::clone(script),
            };
            tokio::spawn(sender.drain());
        }
        answered.await.unwrap_or_else(|_| {
            Err(LimiterError::Reply(
                "the call deciding this request was lost".into(),
            ))
        })
    }
}

/// One call under way on a lane: it sends what is waiting, answers each request, and goes on
/// until nothing waits.
struct Sender {
    group: Arc<GroupCommit>,
    lane: usize,
    redis: Client,
    script: Arc<Script>,
}

impl Sender {
    async fn drain(self) {
        // Should this task die (a panic), the lane must not keep counting it.
        let mut guard = InFlight {
            sender: &self,
            counted: true,
        };
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.lane();
                if queue.waiting.is_empty() {
                    // Under the same lock a newcomer checks `in_flight`, so none is stranded.
                    queue.in_flight -= 1;
                    guard.counted = false;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            let (requests, answers): (Vec<Request>, Vec<_>) = batch
                .into_iter()
                .map(|waiting| (waiting.request, waiting.answer))
                .unzip();
            let expected = answers.len();
            self.group.calls.fetch_add(1, Ordering::Relaxed);
            self.group
                .decided
                .fetch_add(expected as u64, Ordering::Relaxed);
            metrics::histogram!(BATCH_SIZE).record(expected as f64);
            match call(&self.redis, &self.script, requests).await {
                Ok(replies) if replies.len() == expected => {
                    for (answer, reply) in answers.into_iter().zip(replies) {
                        let _ = answer.send(Ok(reply));
                    }
                }
                outcome => {
                    let error = match outcome {
                        Err(error) => error,
                        Ok(replies) => LimiterError::Reply(format!(
                            "{} replies to a batch of {expected}",
                            replies.len()
                        )),
                    };
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    fn lane(&self) -> std::sync::MutexGuard<'_, Lane> {
        self.group.lanes[self.lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

struct InFlight<'a> {
    sender: &'a Sender,
    counted: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.sender.lane().in_flight -= 1;
        }
    }
}

/// One request decided alone, in the script's own format: its reply as the script gives it.
pub(crate) async fn call_one(
    redis: &Client,
    script: &Script,
    (keys, args): Request,
) -> Result<Value, LimiterError> {
    Ok(script.evalsha_with_reload(redis, keys, args).await?)
}

/// One `decide.lua` call deciding `requests` in order: one reply per request. A lone request
/// goes in the script's own format ([`call_one`]); more go in the batch format, a count and
/// then each request's key count and arguments.
pub(crate) async fn call(
    redis: &Client,
    script: &Script,
    requests: Vec<Request>,
) -> Result<Vec<Value>, LimiterError> {
    let requests = match <[Request; 1]>::try_from(requests) {
        Ok([request]) => return Ok(vec![call_one(redis, script, request).await?]),
        Err(requests) => requests,
    };
    let key_count = requests.iter().map(|(keys, _)| keys.len()).sum();
    let arg_count = requests
        .iter()
        .map(|(_, args)| args.len() + 1)
        .sum::<usize>()
        + 1;
    let mut keys = Vec::with_capacity(key_count);
    let mut args = Vec::with_capacity(arg_count);
    args.push(Value::from(requests.len() as i64));
    for (request_keys, request_args) in requests {
        args.push(Value::from(request_keys.len() as i64));
        keys.extend(request_keys);
        args.extend(request_args);
    }
    match script.evalsha_with_reload(redis, keys, args).await? {
        Value::Array(replies) => Ok(replies),
        other => Err(LimiterError::Reply(format!("a batch answered {other:?}"))),
    }
}
