//! The command line. Every setting is a `--flag` and the environment variable DESIGN.md names,
//! with DESIGN.md's defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ingest::{TestNumbers, TrustedProxies};
use limiter::{Policy, Ruleset};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(name = "smsgate", version, about = "A rate-limited SMS gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Threads of the async runtime (default: one per CPU). On a machine shared with Redis and
    /// the load, fewer threads wake each other less: see the README's Benchmarks.
    #[arg(long, global = true, env = "SMSGATE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
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
    /// Run only the dispatcher: accepted SMS to the provider, status back onto the stream.
    Dispatcher(Settings),
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
    /// Print the auth token of an API client (an account SID of SMSGATE_API_CLIENTS, `AC…` or
    /// `AC…/<generation>`), derived from SMSGATE_API_SECRET, to hand to its application.
    ApiToken {
        #[arg(long, env = "SMSGATE_API_SECRET", hide_env_values = true, value_parser = parse_secret)]
        api_secret: SecretString,
        account_sid: String,
    },
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
    /// A TOML policy of rules (DESIGN.md, "Policy beyond the seed's rule"); re-read on SIGHUP.
    /// Without it the policy is the seed's rule `client` over `SMSGATE_LIMITS`. (`--policy`
    /// is `audit`'s what-if policy, hence `--policy-file`.)
    #[arg(long, env = "SMSGATE_POLICY")]
    pub policy_file: Option<PathBuf>,
    /// Prefixes of numbers accepted although not valid (fictional and test ranges), e.g.
    /// `+447700900,+1555`.
    #[arg(long, env = "SMSGATE_TEST_NUMBERS", default_value = "", value_parser = TestNumbers::parse)]
    pub test_numbers: TestNumbers,
    #[arg(long, env = "SMSGATE_ARCHIVE_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub archive_interval: Duration,
    /// How long an entry must sit pending on another archiver before this one claims it (that
    /// consumer is presumed dead). `0` lets `archiver --once` take over a crashed run at once;
    /// a restarted process resumes its own entries at once either way (stable consumer names).
    #[arg(long, env = "SMSGATE_ARCHIVE_CLAIM_IDLE", default_value = "60s", value_parser = parse_interval)]
    pub archive_claim_idle: Duration,
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
    #[command(flatten)]
    pub delivery: DeliverySettings,
    /// How SMS bodies are kept on the stream, in the live lists and in the archive: `full`,
    /// `redacted` (runs of 4+ digits as `•`) or `none`. Refused requests never keep more than
    /// a redacted preview; the body to deliver reaches the dispatcher in full either way.
    #[arg(long, env = "SMSGATE_STORE_MESSAGE", default_value = "redacted")]
    pub store_message: limiter::StoreMessage,
    /// How long the archive keeps each kind of event, e.g.
    /// `accepted=30d,rejected=90d,blocked=90d,delivery=30d` (`forever` keeps a kind); expiry
    /// drops whole day partitions.
    #[arg(
        long,
        env = "SMSGATE_RETENTION",
        default_value = "accepted=30d,rejected=90d,blocked=90d,delivery=30d"
    )]
    pub retention: archiver::Retention,
    /// Account SIDs of the Twilio-compatible API's clients (`AC` + 32 hex, `/<n>` for the
    /// n-th token generation), comma separated. Their tokens derive from SMSGATE_API_SECRET.
    #[arg(long, env = "SMSGATE_API_CLIENTS", default_value = "")]
    pub api_clients: String,
    /// Derives every API client's auth token (at least 16 characters); see `smsgate api-token`.
    #[arg(long, env = "SMSGATE_API_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub api_secret: Option<SecretString>,
}

impl Settings {
    /// How long an accepted body waits in Redis for the dispatcher: the delivery TTL and ten
    /// minutes more (a message not handed over within the TTL expires without its body).
    pub fn body_ttl(&self) -> Duration {
        self.delivery.delivery_ttl + Duration::from_secs(600)
    }
}

/// Which provider delivers, how fast, for how long, and where status changes are reported.
#[derive(Clone, Debug, Args)]
pub struct DeliverySettings {
    /// `log` (append to SMSGATE_OUTBOX, marked delivered), `twilio` or `smpp`.
    #[arg(long, env = "SMSGATE_PROVIDER", default_value = "log", value_parser = ["log", "twilio", "smpp"])]
    pub provider: String,
    /// The `log` provider's file.
    #[arg(long, env = "SMSGATE_OUTBOX", default_value = "outbox.log")]
    pub outbox: PathBuf,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "TWILIO_FROM")]
    pub twilio_from: Option<String>,
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID")]
    pub twilio_messaging_service_sid: Option<String>,
    #[arg(
        long,
        env = "TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_base_url: String,
    /// The SMSC of the `smpp` provider: `smpp://system_id:password@host:port`, with
    /// `?system_type=…` when the SMSC wants one.
    #[arg(long, env = "SMPP_URL", hide_env_values = true)]
    pub smpp_url: Option<String>,
    /// submit_sm outstanding at once on the SMPP session (and so the most that a lost
    /// connection can make the SMSC receive twice).
    #[arg(long, env = "SMPP_WINDOW", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub smpp_window: u32,
    /// The SMPP sender when the client names none (a number or an alphanumeric id); empty
    /// leaves it to the SMSC's account.
    #[arg(long, env = "SMPP_FROM")]
    pub smpp_from: Option<String>,
    /// How the parts of a long SMPP message are marked: `udh` (a header in the message) or
    /// `sar` (the sar_* TLVs, for SMSCs that build the header themselves).
    #[arg(long, env = "SMPP_CONCATENATION", default_value = "udh", value_parser = ["udh", "sar"])]
    pub smpp_concatenation: String,
    /// How often an idle SMPP session is checked with enquire_link.
    #[arg(long, env = "SMPP_ENQUIRE_LINK", default_value = "30s", value_parser = parse_interval)]
    pub smpp_enquire_link: Duration,
    /// Sends a second to the provider, across every dispatcher replica.
    #[arg(long, env = "SMSGATE_PROVIDER_TPS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub provider_tps: u32,
    /// A message not handed over this long after its decision is `expired`.
    #[arg(long, env = "SMSGATE_DELIVERY_TTL", default_value = "1h", value_parser = parse_interval)]
    pub delivery_ttl: Duration,
    /// How long a dispatcher's claim on a message in flight lasts before another replica takes
    /// it over (longer than the provider's timeout).
    #[arg(long, env = "SMSGATE_DELIVERY_LEASE", default_value = "60s", value_parser = parse_interval)]
    pub delivery_lease: Duration,
    /// Signs client status callbacks; without it a `status_callback` is refused (422).
    #[arg(long, env = "SMSGATE_CALLBACK_SECRET", hide_env_values = true)]
    pub callback_secret: Option<String>,
    /// CIDRs that status callbacks may reach although not public (private, loopback, …).
    #[arg(long, env = "SMSGATE_CALLBACK_ALLOW", default_value = "", value_parser = parse_cidrs)]
    pub callback_allow: CidrList,
    /// smsgate's public URL (`https://sms.example.com`): what Twilio signs its receipts over,
    /// and where it is told to send them. Without it, the request's own scheme and host.
    #[arg(long, env = "SMSGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// An optional setting given as an empty string (`VAR=` in an env file, `${VAR:-}` in Compose) is
/// not given: clap hands it over as `Some("")`, and an empty secret must never sign or verify
/// anything (an HMAC with an empty key is one anybody can compute).
pub fn given(value: &Option<String>) -> Option<&String> {
    value.as_ref().filter(|v| !v.is_empty())
}

/// A comma-separated list of CIDRs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<ipnet::IpNet>);

fn parse_cidrs(text: &str) -> Result<CidrList, String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{c}` is not a CIDR like 10.0.0.0/8 or an address"))
        })
        .collect::<Result<_, _>>()
        .map(CidrList)
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

    /// The policy in force: `SMSGATE_POLICY`'s rules, else the seed's rule over `SMSGATE_LIMITS`.
    /// A file that does not parse is an error naming the file, the line and the reason.
    pub fn rules(&self) -> anyhow::Result<Ruleset> {
        match &self.policy_file {
            None => Ok(Ruleset::seed(self.limits.clone())),
            Some(path) => load_rules(path),
        }
    }

    /// The Twilio-compatible API's clients; a list without a good secret is refused at start.
    pub fn api_clients(&self) -> anyhow::Result<ingest::ApiClients> {
        ingest::ApiClients::parse(&self.api_clients, self.api_secret.as_ref())
            .context("SMSGATE_API_CLIENTS")
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

/// Reads and parses a policy file.
pub fn load_rules(path: &std::path::Path) -> anyhow::Result<Ruleset> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    Ruleset::parse_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Delivery {
        #[command(flatten)]
        delivery: DeliverySettings,
    }

    #[test]
    fn an_empty_optional_setting_is_not_given() {
        assert_eq!(given(&None), None);
        assert_eq!(given(&Some(String::new())), None);
        assert_eq!(given(&Some("s3cret".into())), Some(&"s3cret".to_owned()));
    }

    #[test]
    fn an_empty_callback_secret_or_twilio_token_from_the_environment_is_none() {
        // What `${SMSGATE_CALLBACK_SECRET:-}` in docker-compose.yml hands the process.
        let settings = <Delivery as clap::Parser>::try_parse_from([
            "smsgate",
            "--callback-secret",
            "",
            "--twilio-auth-token",
            "",
        ])
        .unwrap()
        .delivery;
        assert_eq!(settings.callback_secret.as_deref(), Some(""));
        assert_eq!(given(&settings.callback_secret), None);
        assert_eq!(given(&settings.twilio_auth_token), None);
    }

    #[test]
    fn worker_threads_apply_to_every_command_and_zero_is_refused() {
        let cli =
            <Cli as clap::Parser>::try_parse_from(["smsgate", "ingest", "--worker-threads", "1"])
                .unwrap();
        assert_eq!(cli.worker_threads, Some(1));
        let cli = <Cli as clap::Parser>::try_parse_from(["smsgate", "ingest"]).unwrap();
        assert_eq!(cli.worker_threads, None, "unset: one thread per CPU");
        assert!(
            <Cli as clap::Parser>::try_parse_from(["smsgate", "--worker-threads", "0", "serve"])
                .is_err()
        );
    }
}
