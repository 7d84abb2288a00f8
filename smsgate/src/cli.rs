//! The command line. Every setting is a `--flag` and the environment variable DESIGN.md names,
//! with DESIGN.md's defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ingest::TrustedProxies;
use limiter::Policy;
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(name = "smsgate", version, about = "A rate-limited SMS gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process on one port (the default deployment on one machine).
    Serve(Settings),
    /// Run only the public API (`POST /api/sms`).
    Ingest(Settings),
    /// Run only the projector: live stats, the operator API and the live feed.
    Projector {
        #[command(flatten)]
        settings: Settings,
        /// Recompute the projections from the archive and the stream, then exit.
        #[arg(long)]
        rebuild: bool,
    },
    /// Run only the archiver: stream → Postgres.
    Archiver {
        #[command(flatten)]
        settings: Settings,
        /// Drain everything now, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Print events in order from the archive and the stream's tail (JSON lines or a table).
    Replay {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        args: crate::replay::ReplayArgs,
    },
    /// Re-derive every decision in a range with the policy in force; exit 0 when the record is
    /// consistent, 1 when any event disagrees, 2 when the audit could not run.
    Audit {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        args: crate::replay::AuditArgs,
    },
    /// Load generator: drives the API (or the script straight at Redis) and prints figures.
    Bench(crate::bench::BenchArgs),
    /// Print the OpenAPI document of `smsgate serve` (what `GET /api/openapi.json` serves).
    Openapi,
}

/// Settings shared by every role.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Created (database and schema) on start when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/smsgate"
    )]
    pub database_url: String,
    #[arg(long, env = "SMSGATE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Rolling windows, e.g. `3/1m,10/1d,100/1h`.
    #[arg(long, env = "SMSGATE_LIMITS", default_value = Policy::DEFAULT, value_parser = Policy::parse)]
    pub limits: Policy,
    #[arg(long, env = "SMSGATE_ARCHIVE_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub archive_interval: Duration,
    /// Prefix of every Redis key.
    #[arg(long, env = "SMSGATE_NAMESPACE", default_value = limiter::Layout::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Required by the operator API when set; required to listen on a non-loopback address
    /// or behind trusted proxies. Empty, example or shorter than 16 characters is no token.
    #[arg(long, env = "SMSGATE_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub admin_token: Option<SecretString>,
    /// How long a dashboard login lasts.
    #[arg(long, env = "SMSGATE_SESSION_TTL", default_value = "12h", value_parser = parse_interval)]
    pub session_ttl: Duration,
    /// Failed logins and wrong bearer tokens a client may make within 5 minutes before it
    /// gets 429 (an API fuzzer, whose wrong-token probes are many, sets it high).
    #[arg(long, env = "SMSGATE_AUTH_MAX_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
    pub auth_max_failures: i64,
    /// CIDR list of proxies whose `X-Forwarded-For` is believed.
    #[arg(long, env = "SMSGATE_TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    #[arg(long, env = "SMSGATE_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub partitions: u16,
    #[command(flatten)]
    pub server: ServerLimits,
    /// The built dashboard (`npm --prefix dashboard run build`).
    #[arg(long, env = "SMSGATE_DASHBOARD_DIR", default_value = "dashboard/dist")]
    pub dashboard_dir: PathBuf,
}

/// What one client may hold of the HTTP server: slow or idle connections are closed, and the
/// server takes at most so many connections and requests at once.
#[derive(Clone, Debug, Args)]
pub struct ServerLimits {
    /// A request's header must arrive within this; an idle keep-alive connection is closed
    /// after it too.
    #[arg(long, env = "SMSGATE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub header_timeout: Duration,
    /// A request's body must arrive within this.
    #[arg(long, env = "SMSGATE_BODY_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub body_timeout: Duration,
    /// A response must start within this (a live feed, once started, runs on).
    #[arg(long, env = "SMSGATE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_interval)]
    pub request_timeout: Duration,
    /// Open connections at most; more wait in the listen queue.
    #[arg(long, env = "SMSGATE_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Requests handled at once at most; more wait for a turn (within the request timeout).
    #[arg(long, env = "SMSGATE_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

impl Settings {
    pub fn layout(&self) -> limiter::Layout {
        limiter::Layout::new(self.namespace.clone(), self.partitions)
    }

    /// Settings with every default, as if no flag or variable were given (tests start here).
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        Only::parse_from(["smsgate"]).settings
    }
}

/// Kept secret from here on: clap's own `Debug` of the settings shows `[REDACTED]`.
fn parse_secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text))
}

/// `10m`, `30s`, `1h`; a bare number is seconds.
fn parse_interval(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    limiter::policy::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration like 30s, 10m or 1h"))
}
