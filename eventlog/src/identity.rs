//! Stable consumer names, so a restarted consumer finds its own pending entries at once.
//!
//! A name is `<group>-<host>-<slot>`. A process takes the lowest slot of its host whose holder
//! (the pid recorded in `<ns>:consumers:<group>:<host>-<slot>`) is no longer running, so a
//! consumer restarted after a crash (SIGKILL, OOM, a container restart) comes back under the
//! name it had and re-reads what it had read but not settled, instead of waiting for another
//! consumer to claim it after the claim idle time. Two live processes on one host get two
//! slots. Liveness is read from `/proc/<pid>`: hosts must have distinct names (as containers
//! and machines do); where `/proc` is absent every holder counts as gone.

use std::path::Path;
use std::sync::LazyLock;

use fred::clients::Client;
use fred::interfaces::KeysInterface;
use limiter::Layout;

use crate::LogError;
use crate::script::Script;

/// Slots tried per host before giving up (more live consumers of one group on one host than
/// this is a misconfiguration).
const SLOTS: u32 = 64;

/// Sets KEYS[1] to ARGV[2] only if it still holds ARGV[1] (`''`: absent): taking over a slot
/// races with other starting processes, and only one may win.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local v = redis.call('GET', KEYS[1]) or ''
         if v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
         return 0",
    )
});

/// A consumer name held by this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerName {
    pub name: String,
    key: String,
    pid: String,
}

impl ConsumerName {
    /// Takes the lowest free slot of `host` for `group`.
    pub async fn acquire(
        redis: &Client,
        layout: &Layout,
        group: &str,
        host: &str,
    ) -> Result<Self, LogError> {
        let pid = std::process::id().to_string();
        for slot in 0..SLOTS {
            let key = layout.global(&format!("consumers:{group}:{host}-{slot}"));
            let holder: Option<String> = redis.get(&key).await?;
            let free = match &holder {
                None => true,
                Some(held) => *held == pid || !running(held),
            };
            if !free {
                continue;
            }
            let expected = holder.unwrap_or_default();
            let taken: i64 = TAKE
                .run(
                    redis,
                    vec![key.as_str()],
                    vec![expected.as_str(), pid.as_str()],
                )
                .await?;
            if taken == 1 {
                return Ok(Self {
                    name: format!("{group}-{host}-{slot}"),
                    key,
                    pid,
                });
            }
        }
        Err(LogError::Reply(format!(
            "{SLOTS} live consumers of group {group} on host {host}"
        )))
    }

    /// Frees the slot at a clean shutdown (a crashed process frees it by not running).
    pub async fn release(&self, redis: &Client) -> Result<(), LogError> {
        let _freed: i64 = TAKE
            .run(redis, vec![self.key.as_str()], vec![self.pid.as_str(), ""])
            .await?;
        Ok(())
    }
}

fn running(pid: &str) -> bool {
    let proc = Path::new("/proc");
    proc.exists() && pid.parse::<u32>().is_ok() && proc.join(pid).exists()
}
