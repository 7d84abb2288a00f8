//! CPU time as the bench reads it: a process's own from `/proc/<pid>/stat` (the server's and
//! the bench's, which is the load generator), Redis's from `INFO cpu` (user + system of the
//! server process, every thread).

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::CustomCommand;

/// The unit of `/proc/<pid>/stat`'s times: Linux's USER_HZ, 100 on every architecture smsgate
/// runs on (it is not the kernel's CONFIG_HZ).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds the process has used (`/proc/<pid>/stat`, fields 14 and 15).
pub fn process_cpu(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it are after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    Ok((ticks(11) + ticks(12)) / USER_HZ)
}

/// Reads both sides' CPU; Redis's only on one Redis (on a cluster INFO answers for one node).
pub struct Cpu {
    redis: Option<Pool>,
}

/// CPU seconds used so far by the server process, by Redis where known, and by this process
/// (the load generator, which shares the machine with both).
pub struct Reading {
    server: Option<f64>,
    redis: Option<f64>,
    load: Option<f64>,
}

/// CPU seconds each side used between two readings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Used {
    pub server: Option<f64>,
    pub redis: Option<f64>,
    pub load: Option<f64>,
}

impl Reading {
    /// What was used between `earlier` and this reading.
    pub fn since(&self, earlier: &Reading) -> Used {
        let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        Used {
            server: delta(self.server, earlier.server),
            redis: delta(self.redis, earlier.redis),
            load: delta(self.load, earlier.load),
        }
    }
}

impl Cpu {
    pub fn new(redis: &Pool) -> Self {
        Self {
            redis: (!redis.is_clustered()).then(|| redis.clone()),
        }
    }

    pub async fn read(&self, server: Option<u32>) -> anyhow::Result<Reading> {
        let redis = match &self.redis {
            Some(pool) => {
                let info: String = pool
                    .next()
                    .custom(CustomCommand::new_static("INFO", None, false), vec!["cpu"])
                    .await?;
                Some(redis_cpu(&info)?)
            }
            None => None,
        };
        Ok(Reading {
            server: server.map(process_cpu).transpose()?,
            redis,
            load: Some(process_cpu(std::process::id())?),
        })
    }
}

/// `used_cpu_user` + `used_cpu_sys` of an `INFO cpu` reply, in seconds.
fn redis_cpu(info: &str) -> anyhow::Result<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow::anyhow!("INFO cpu has no {name}"))
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_cpu_adds_user_and_system_time() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(redis_cpu(info).unwrap(), 3.75);
        assert!(redis_cpu("# CPU\r\n").is_err());
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spent: u64 = (0..2_000_000u64).map(|i| i ^ (i >> 3)).sum();
        assert!(spent > 0);
        assert!(process_cpu(std::process::id()).unwrap() > 0.0);
    }
}
