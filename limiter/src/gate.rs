//! `RateLimiter`: runs the decision script (EVALSHA, reloading on NOSCRIPT) and turns its
//! reply into a typed `Decision`. "Rate limited" is a value here, not an error.

use std::net::IpAddr;

use fred::clients::Client;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::Value;
use uuid::Uuid;

use crate::codec::{PendingEvent, encode_pending};
use crate::event::{Outcome, SCHEMA_VERSION};
use crate::layout::{Layout, client_key};
use crate::policy::Policy;

/// The Lua source of the decision; see the header of `decide.lua` for its keys and arguments.
pub const DECIDE_LUA: &str = include_str!("decide.lua");

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

/// One window after the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowState {
    pub name: String,
    pub limit: u32,
    pub window_secs: u64,
    pub remaining: u32,
    /// Whole seconds until the oldest counted request leaves the window (0 when none counts).
    pub reset_after: u64,
    /// Whole seconds until this window would admit the request; 0 unless it refused it.
    pub retry_after: u64,
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
    pub windows: Vec<WindowState>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("redis is not connected")]
    Disconnected,
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from the decision script: {0}")]
    Reply(String),
}

/// Decides requests against one policy, writing to one key layout.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    policy: Policy,
    policy_text: String,
    layout: Layout,
    script_sha: String,
    /// `[n, name, limit, µs, …]`: the policy as script arguments, built once (cloning a
    /// `Value::Bytes` only bumps a reference count).
    window_args: Vec<Value>,
}

impl RateLimiter {
    pub fn new(policy: Policy, layout: Layout) -> Self {
        let mut window_args = vec![policy.windows().len().to_string()];
        for w in policy.windows() {
            window_args.push(w.name.clone());
            window_args.push(w.limit.to_string());
            window_args.push(w.duration_micros().to_string());
        }
        let window_args = window_args
            .into_iter()
            .map(|a| Value::Bytes(a.into_bytes().into()))
            .collect();
        Self {
            policy_text: policy.to_string(),
            policy,
            layout,
            script_sha: fred::util::sha1_hash(DECIDE_LUA),
            window_args,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Loads the script on every primary ahead of the first request (EVALSHA also reloads it
    /// on NOSCRIPT, e.g. after a Redis restart or failover).
    pub async fn load(&self, redis: &Client) -> Result<(), LimiterError> {
        redis.script_load_cluster::<(), _>(DECIDE_LUA).await?;
        Ok(())
    }

    /// Decides `request` atomically and records it on its partition's stream.
    pub async fn decide(
        &self,
        redis: &Client,
        request: &SmsRequest<'_>,
    ) -> Result<Decision, LimiterError> {
        self.decide_with_callback(redis, request, None).await
    }

    /// [`Self::decide`], recording the client's `status_callback` URL with the decision so the
    /// dispatcher reports every status change of the message there.
    pub async fn decide_with_callback(
        &self,
        redis: &Client,
        request: &SmsRequest<'_>,
        status_callback: Option<&str>,
    ) -> Result<Decision, LimiterError> {
        if !redis.is_connected() {
            return Err(LimiterError::Disconnected);
        }
        let id = Uuid::now_v7();
        let client = client_key(&request.ip, request.to);
        let partition = self.layout.partition_of(&client);
        let pending = encode_pending(&PendingEvent {
            v: SCHEMA_VERSION,
            id,
            ip: request.ip,
            to: request.to,
            from: request.from,
            message: request.message,
            segments: request.segments,
            policy: &self.policy_text,
            status_callback,
        });
        let quota = self.layout.quota(partition, &client);
        let stream = self.layout.stream(partition);
        let pending = Value::Bytes(pending.into());
        let member = Value::from(id.to_string());
        let call = || {
            let keys = vec![quota.as_str(), stream.as_str()];
            let mut args = Vec::with_capacity(2 + self.window_args.len());
            args.push(pending.clone());
            args.push(member.clone());
            args.extend(self.window_args.iter().cloned());
            redis.evalsha::<Vec<Value>, _, _, _>(self.script_sha.as_str(), keys, args)
        };
        let reply = match call().await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                self.load(redis).await?;
                call().await?
            }
            other => other?,
        };
        self.parse_reply(id, partition, reply)
    }

    fn parse_reply(
        &self,
        id: Uuid,
        partition: u16,
        reply: Vec<Value>,
    ) -> Result<Decision, LimiterError> {
        let windows = self.policy.windows();
        if reply.len() != 4 + 3 * windows.len() {
            return Err(LimiterError::Reply(format!("{} values", reply.len())));
        }
        let int = |i: usize| -> Result<i64, LimiterError> {
            reply[i]
                .as_i64()
                .ok_or_else(|| LimiterError::Reply(format!("value {i} is {:?}", reply[i])))
        };
        let non_negative = |i: usize| int(i).map(|v| u64::try_from(v).unwrap_or(0));
        let outcome = if int(0)? == 1 {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        };
        let stream_id = reply[3]
            .as_str()
            .map(|s| s.to_string())
            .ok_or_else(|| LimiterError::Reply("stream id is not a string".into()))?;
        let windows = windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let at = 4 + 3 * i;
                Ok(WindowState {
                    name: w.name.clone(),
                    limit: w.limit,
                    window_secs: w.duration.as_secs(),
                    remaining: u32::try_from(non_negative(at)?).unwrap_or(0),
                    reset_after: non_negative(at + 1)?,
                    retry_after: non_negative(at + 2)?,
                })
            })
            .collect::<Result<_, LimiterError>>()?;
        Ok(Decision {
            id,
            outcome,
            at_us: int(1)?,
            retry_after: non_negative(2)?,
            partition,
            stream_id,
            windows,
        })
    }
}
