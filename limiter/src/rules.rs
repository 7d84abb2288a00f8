//! The policy as rules (DESIGN.md, "Policy beyond the seed's rule"): each rule counts accepted
//! requests per value of its key (the client IP network, the number, its country, a number
//! prefix, the API client) over its own rolling windows, and a request is accepted only if every
//! enforced rule that applies to it allows it (a rule applies when the request has every
//! dimension of its key: [`Rule::applies_to`]). `[destinations]` and `[clients]` refuse some
//! requests outright (`blocked`).
//!
//! A `Ruleset` comes from a TOML file (`SMSGATE_POLICY`) or, without one, from `SMSGATE_LIMITS`
//! as the seed's single rule `client` keyed on (ip, to). Its compact text (`Display`) is what
//! every event records as its policy and what `Ruleset::parse_text` reads back, so audits can
//! re-derive decisions; the seed's rule with default client prefixes prints as the plain
//! `3/1m,10/1d` of today's events.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::policy::{Policy, PolicyError, Window};

/// What a rule counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The client's network: its IP masked to `[clients]` `ipv4_prefix` / `ipv6_prefix`.
    Ip,
    /// The destination number in E.164.
    To,
    /// The destination's country (ISO 3166 alpha-2 of its calling-code region).
    Country,
    /// The first `prefix_digits` digits of the destination (after the `+`).
    Prefix,
    /// The API client (account SID) of a request through the Twilio-compatible API.
    ApiClient,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::To => "to",
            Self::Country => "country",
            Self::Prefix => "prefix",
            Self::ApiClient => "api_client",
        }
    }
}

impl FromStr for Dimension {
    type Err = RulesError;
    fn from_str(s: &str) -> Result<Self, RulesError> {
        match s {
            "ip" => Ok(Self::Ip),
            "to" => Ok(Self::To),
            "country" => Ok(Self::Country),
            "prefix" => Ok(Self::Prefix),
            "api_client" => Ok(Self::ApiClient),
            other => Err(RulesError::Invalid(format!(
                "unknown dimension `{other}`; expected ip, to, country, prefix or api_client"
            ))),
        }
    }
}

/// Whether a rule refuses (`enforce`) or only records what it would have refused (`shadow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
        }
    }
}

/// One rule: windows counted per value of `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub key: Vec<Dimension>,
    /// Digits of the `prefix` dimension; 0 when the key has no prefix.
    pub prefix_digits: u8,
    pub limits: Policy,
    pub mode: Mode,
}

/// The rule whose windows keep their bare names (`1m`), so the seed's API does not change.
pub const SEED_RULE: &str = "client";

impl Rule {
    /// The seed's rule: `client`, keyed on (ip, to), enforced.
    pub fn seed(limits: Policy) -> Self {
        Self {
            name: SEED_RULE.to_owned(),
            key: vec![Dimension::Ip, Dimension::To],
            prefix_digits: 0,
            limits,
            mode: Mode::Enforce,
        }
    }

    /// `R.<window>`, or the bare window name for the rule `client`.
    pub fn window_name(&self, window: &Window) -> String {
        if self.name == SEED_RULE {
            window.name.clone()
        } else {
            format!("{}.{}", self.name, window.name)
        }
    }

    /// Whether the rule judges `subject`: only when the request has every dimension of the
    /// rule's key. A rule on `api_client` ignores requests of `POST /api/sms`, and a rule on
    /// `ip` ignores an API client's request that named no end user's IP (its socket peer is the
    /// application's server, not a person to hold to a per-person quota).
    pub fn applies_to(&self, subject: &Subject<'_>) -> bool {
        self.key.iter().all(|d| match d {
            Dimension::Ip => subject.ip_known,
            Dimension::ApiClient => subject.api_client.is_some(),
            Dimension::To | Dimension::Country | Dimension::Prefix => true,
        })
    }

    /// The value this rule counts `subject` under, e.g. `198.51.100.7|+14155550123`; `None`
    /// when the rule does not apply to it ([`Rule::applies_to`]).
    pub fn key_value(&self, subject: &Subject<'_>) -> Option<String> {
        if !self.applies_to(subject) {
            return None;
        }
        // Written into one string: a key value is built for every rule of every request.
        let mut value = String::with_capacity(48);
        for (i, dimension) in self.key.iter().enumerate() {
            if i > 0 {
                value.push('|');
            }
            value.push_str(match dimension {
                Dimension::ApiClient => subject.api_client.unwrap_or_default(),
                Dimension::Ip => subject.network,
                Dimension::To => subject.to,
                Dimension::Country => subject.country.unwrap_or("ZZ"),
                Dimension::Prefix => {
                    let digits = subject.to.trim_start_matches('+');
                    let end = digits
                        .char_indices()
                        .nth(usize::from(self.prefix_digits))
                        .map_or(digits.len(), |(at, _)| at);
                    &digits[..end]
                }
            });
        }
        Some(value)
    }
}

/// What the rules look at in a request: the client's network, the destination and the API
/// client.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The client IP masked to its network, as [`Clients::network`] prints it.
    pub network: &'a str,
    /// False when the IP is an API client's own address, not its end user's: rules keyed on
    /// `ip` then do not apply.
    pub ip_known: bool,
    pub to: &'a str,
    pub country: Option<&'a str>,
    /// The account SID of the API client that sent the request, if one did.
    pub api_client: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// A request of `POST /api/sms`: a known client IP, no API client.
    pub fn direct(network: &'a str, to: &'a str, country: Option<&'a str>) -> Self {
        Self {
            network,
            ip_known: true,
            to,
            country,
            api_client: None,
        }
    }
}

/// `[clients]`: how an IP becomes a client, and networks never limited or always refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clients {
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl Clients {
    /// The client network of `ip`: the address itself at a full-length prefix (`203.0.113.7`,
    /// today's keys), else the network in CIDR form (`2001:db8:1:2::/64`).
    pub fn network(&self, ip: IpAddr) -> String {
        self.masked_network(ip).unwrap_or_else(|| ip.to_string())
    }

    /// [`Clients::network`] when it is not the address's own text (an IPv4 or IPv6 prefix, or
    /// the IPv4 address of an IPv4-mapped IPv6 one); `None` when the client is the address.
    pub fn masked_network(&self, ip: IpAddr) -> Option<String> {
        let canonical = ip.to_canonical();
        let (prefix, full) = match canonical {
            IpAddr::V4(_) => (self.ipv4_prefix, 32),
            IpAddr::V6(_) => (self.ipv6_prefix, 128),
        };
        match IpNet::new(canonical, prefix) {
            Ok(net) if prefix < full => Some(net.trunc().to_string()),
            _ => (canonical != ip).then(|| canonical.to_string()),
        }
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|net| net.contains(&ip))
    }

    pub fn denied(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.deny.iter().any(|net| net.contains(&ip))
    }
}

/// The types libphonenumber gives a full number, by the names a policy file uses: exactly
/// what ingest's `PhoneNumber::number_type` can answer (a test there holds the two lists
/// equal). Short-number categories (`short_code`, `emergency`, …) are not among them: a
/// destination is always a full number, so denying one would never refuse anything.
pub const NUMBER_TYPES: &[&str] = &[
    "fixed_line",
    "mobile",
    "fixed_line_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
    "unknown",
];

/// `[destinations]`: countries and number types smsgate never sends to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    /// Empty: every country.
    pub allow_countries: Vec<String>,
    pub deny_countries: Vec<String>,
    pub deny_number_types: Vec<String>,
}

/// Why a request was refused outright; the slug names the 403's problem `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockReason {
    Country,
    NumberType,
    Client,
}

impl BlockReason {
    pub const ALL: [Self; 3] = [Self::Country, Self::NumberType, Self::Client];

    /// The reason as events, metrics and the problem `type` (`/problems/blocked-<slug>`) name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Country => "destination-country",
            Self::NumberType => "number-type",
            Self::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// The destination of a request as `[destinations]` judges it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Destination<'a> {
    pub country: Option<&'a str>,
    /// One of [`NUMBER_TYPES`].
    pub number_type: Option<&'a str>,
}

/// A whole policy: rules, destination and client settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    rules: Vec<Rule>,
    pub destinations: Destinations,
    pub clients: Clients,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    /// The TOML does not parse or does not have the policy's shape; the message names the line.
    #[error("{0}")]
    Toml(String),
    #[error("{0}")]
    Invalid(String),
    #[error("line {line}: {reason}")]
    AtLine { line: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleShape>>,
    #[serde(default)]
    destinations: DestinationsShape,
    #[serde(default)]
    clients: ClientsShape,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleShape {
    name: String,
    key: Vec<String>,
    limits: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    prefix_digits: Option<u8>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationsShape {
    #[serde(default)]
    allow_countries: Vec<String>,
    #[serde(default)]
    deny_countries: Vec<String>,
    #[serde(default)]
    deny_number_types: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsShape {
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl Ruleset {
    /// The policy without a file: the seed's rule over `limits`, default clients.
    pub fn seed(limits: Policy) -> Self {
        Self {
            rules: vec![Rule::seed(limits)],
            destinations: Destinations::default(),
            clients: Clients::default(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The seed rule's windows if the policy has a rule `client`, else the first rule's: the
    /// windows that views built for one rule (per-client usage) show.
    pub fn primary(&self) -> &Policy {
        &self
            .rules
            .iter()
            .find(|r| r.name == SEED_RULE)
            .unwrap_or(&self.rules[0])
            .limits
    }

    /// How many windows the policy has, over all its rules (the per-window parts of a
    /// decision's reply, in this order).
    pub fn window_count(&self) -> usize {
        self.rules.iter().map(|r| r.limits.windows().len()).sum()
    }

    /// The longest window of any rule.
    pub fn longest(&self) -> std::time::Duration {
        self.rules
            .iter()
            .map(|r| r.limits.longest())
            .max()
            .unwrap_or_default()
    }

    /// Why `[destinations]` or `[clients]` refuse a request outright, if they do.
    pub fn blocks(&self, ip: IpAddr, destination: &Destination<'_>) -> Option<BlockReason> {
        if self.clients.denied(ip) {
            return Some(BlockReason::Client);
        }
        let d = &self.destinations;
        if let Some(country) = destination.country {
            let listed = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case(country));
            if listed(&d.deny_countries)
                || (!d.allow_countries.is_empty() && !listed(&d.allow_countries))
            {
                return Some(BlockReason::Country);
            }
        } else if !d.allow_countries.is_empty() {
            return Some(BlockReason::Country);
        }
        if let Some(kind) = destination.number_type
            && d.deny_number_types.iter().any(|t| t == kind)
        {
            return Some(BlockReason::NumberType);
        }
        None
    }

    /// Parses a policy file. Errors name the line (TOML syntax, shape, or a bad value).
    pub fn parse_toml(text: &str) -> Result<Self, RulesError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let file: FileShape = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => RulesError::AtLine {
                line: line_of(span.start),
                reason: e.message().to_owned(),
            },
            None => RulesError::Toml(e.message().to_owned()),
        })?;
        let mut rules = Vec::new();
        for spanned in file.rule {
            let line = line_of(spanned.span().start);
            let shape = spanned.into_inner();
            let at = |reason: String| RulesError::AtLine { line, reason };
            let rule = build_rule(shape).map_err(|e| at(e.to_string()))?;
            if rules.iter().any(|r: &Rule| r.name == rule.name) {
                return Err(at(format!("rule `{}` appears twice", rule.name)));
            }
            rules.push(rule);
        }
        let find_line = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map_or(1, |i| i + 1)
        };
        let clients =
            build_clients(file.clients).map_err(|(needle, reason)| RulesError::AtLine {
                line: find_line(&needle),
                reason,
            })?;
        let destinations = build_destinations(file.destinations).map_err(|(needle, reason)| {
            RulesError::AtLine {
                line: find_line(&needle),
                reason,
            }
        })?;
        if rules.is_empty() {
            return Err(RulesError::Invalid(
                "the policy has no [[rule]]; it needs at least one".into(),
            ));
        }
        Ok(Self {
            rules,
            destinations,
            clients,
        })
    }

    /// Reads the compact text of [`Display`] back (also today's plain `3/1m,10/1d`). Only what
    /// decides rate limits is in it; `[destinations]` and `deny` act before any rule and their
    /// refusals carry their reason on the event.
    pub fn parse_text(text: &str) -> Result<Self, RulesError> {
        if !text.contains('=') {
            let limits = Policy::parse(text).map_err(|e| RulesError::Invalid(e.to_string()))?;
            return Ok(Self::seed(limits));
        }
        let mut rules = Vec::new();
        let mut clients = Clients::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (head, value) = part
                .split_once('=')
                .ok_or_else(|| RulesError::Invalid(format!("`{part}` has no `=`")))?;
            let bad = || RulesError::Invalid(format!("`{part}` is not a rule or a client setting"));
            match head {
                "ipv4" => clients.ipv4_prefix = parse_prefix(value).ok_or_else(bad)?,
                "ipv6" => clients.ipv6_prefix = parse_prefix(value).ok_or_else(bad)?,
                "allow" => {
                    clients.allow = parse_cidrs(value.split(' ')).map_err(RulesError::Invalid)?;
                }
                _ => {
                    let (name, rest) = head.split_once('(').ok_or_else(bad)?;
                    let (dims, mode) = rest.split_once(')').ok_or_else(bad)?;
                    let mut prefix_digits = None;
                    let mut key = Vec::new();
                    for d in dims.split(',') {
                        if let Some(n) = d.strip_prefix("prefix:") {
                            prefix_digits = Some(n.parse().map_err(|_| bad())?);
                            key.push("prefix".to_owned());
                        } else {
                            key.push(d.to_owned());
                        }
                    }
                    let mode = match mode {
                        "" => Mode::Enforce,
                        "~shadow" => Mode::Shadow,
                        _ => return Err(bad()),
                    };
                    rules.push(build_rule(RuleShape {
                        name: name.to_owned(),
                        key,
                        limits: value.to_owned(),
                        mode,
                        prefix_digits,
                    })?);
                }
            }
        }
        if rules.is_empty() {
            return Err(RulesError::Invalid(format!("`{text}` has no rule")));
        }
        Ok(Self {
            rules,
            destinations: Destinations::default(),
            clients,
        })
    }
}

fn parse_prefix(value: &str) -> Option<u8> {
    value.strip_prefix('/')?.parse().ok()
}

fn build_rule(shape: RuleShape) -> Result<Rule, RulesError> {
    let name = shape.name;
    let valid_name = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid_name {
        return Err(RulesError::Invalid(format!(
            "rule name `{name}` must be 1 to 32 of a-z, 0-9, `_` or `-`"
        )));
    }
    let mut key = Vec::new();
    for d in &shape.key {
        let d: Dimension = d.parse()?;
        if key.contains(&d) {
            return Err(RulesError::Invalid(format!(
                "rule `{name}`: dimension `{}` appears twice",
                d.as_str()
            )));
        }
        key.push(d);
    }
    if key.is_empty() {
        return Err(RulesError::Invalid(format!(
            "rule `{name}`: `key` needs at least one dimension"
        )));
    }
    let prefix_digits = match (key.contains(&Dimension::Prefix), shape.prefix_digits) {
        (true, Some(n @ 1..=15)) => n,
        (true, _) => {
            return Err(RulesError::Invalid(format!(
                "rule `{name}`: the `prefix` dimension needs `prefix_digits` between 1 and 15"
            )));
        }
        (false, None) => 0,
        (false, Some(_)) => {
            return Err(RulesError::Invalid(format!(
                "rule `{name}`: `prefix_digits` without the `prefix` dimension"
            )));
        }
    };
    let limits = Policy::parse(&shape.limits)
        .map_err(|e: PolicyError| RulesError::Invalid(format!("rule `{name}`: limits: {e}")))?;
    Ok(Rule {
        name,
        key,
        prefix_digits,
        limits,
        mode: shape.mode,
    })
}

/// Errors carry a text to find the offending line by, and the reason.
fn build_clients(shape: ClientsShape) -> Result<Clients, (String, String)> {
    let mut clients = Clients::default();
    if let Some(p) = shape.ipv4_prefix {
        if !(1..=32).contains(&p) {
            return Err((
                "ipv4_prefix".into(),
                format!("ipv4_prefix {p} is not 1 to 32"),
            ));
        }
        clients.ipv4_prefix = p;
    }
    if let Some(p) = shape.ipv6_prefix {
        if !(1..=128).contains(&p) {
            return Err((
                "ipv6_prefix".into(),
                format!("ipv6_prefix {p} is not 1 to 128"),
            ));
        }
        clients.ipv6_prefix = p;
    }
    clients.allow = parse_cidrs(shape.allow.iter().map(String::as_str))
        .map_err(|reason| ("allow".to_owned(), reason))?;
    clients.deny = parse_cidrs(shape.deny.iter().map(String::as_str))
        .map_err(|reason| ("deny".to_owned(), reason))?;
    Ok(clients)
}

fn parse_cidrs<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<IpNet>, String> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
        })
        .collect()
}

fn build_destinations(shape: DestinationsShape) -> Result<Destinations, (String, String)> {
    let country = |field: &str, list: Vec<String>| {
        list.into_iter()
            .map(|c| {
                if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                    Ok(c.to_ascii_uppercase())
                } else {
                    Err((
                        field.to_owned(),
                        format!("`{c}` is not an ISO 3166 alpha-2 country code"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let allow_countries = country("allow_countries", shape.allow_countries)?;
    let deny_countries = country("deny_countries", shape.deny_countries)?;
    for t in &shape.deny_number_types {
        if !NUMBER_TYPES.contains(&t.as_str()) {
            return Err((
                "deny_number_types".into(),
                format!(
                    "`{t}` is not a number type; expected one of {}",
                    NUMBER_TYPES.join(", ")
                ),
            ));
        }
    }
    Ok(Destinations {
        allow_countries,
        deny_countries,
        deny_number_types: shape.deny_number_types,
    })
}

impl fmt::Display for Ruleset {
    /// The compact text: `3/1m,10/1d` for the seed's rule with default clients, else
    /// `client(ip,to)=3/1m,10/1d; number(to)=5/1m; pfx(prefix:6)~shadow=9/1h; ipv6=/56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default_clients = Clients {
            deny: self.clients.deny.clone(),
            ..Clients::default()
        };
        if self.rules.len() == 1
            && self.rules[0] == Rule::seed(self.rules[0].limits.clone())
            && self.clients == default_clients
        {
            return write!(f, "{}", self.rules[0].limits);
        }
        let mut parts = Vec::new();
        for rule in &self.rules {
            let dims: Vec<String> = rule
                .key
                .iter()
                .map(|d| match d {
                    Dimension::Prefix => format!("prefix:{}", rule.prefix_digits),
                    d => d.as_str().to_owned(),
                })
                .collect();
            let mode = if rule.mode == Mode::Shadow {
                "~shadow"
            } else {
                ""
            };
            parts.push(format!(
                "{}({}){mode}={}",
                rule.name,
                dims.join(","),
                rule.limits
            ));
        }
        if self.clients.ipv4_prefix != 32 {
            parts.push(format!("ipv4=/{}", self.clients.ipv4_prefix));
        }
        if self.clients.ipv6_prefix != 64 {
            parts.push(format!("ipv6=/{}", self.clients.ipv6_prefix));
        }
        if !self.clients.allow.is_empty() {
            let allow: Vec<String> = self.clients.allow.iter().map(ToString::to_string).collect();
            parts.push(format!("allow={}", allow.join(" ")));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[rule]]
name = "client"
key = ["ip", "to"]
limits = "3/1m,10/1d"

[[rule]]
name = "number"
key = ["to"]
limits = "5/1m,20/1d"

[[rule]]
name = "range"
key = ["ip", "prefix"]
prefix_digits = 6
limits = "10/1h"
mode = "shadow"

[destinations]
deny_countries = ["cu"]
deny_number_types = ["premium_rate"]

[clients]
ipv6_prefix = 56
allow = ["10.0.0.0/8"]
deny = ["192.0.2.0/24"]
"#;

    #[test]
    fn a_policy_file_parses_into_rules_and_prints_compactly() {
        let rules = Ruleset::parse_toml(FILE).unwrap();
        assert_eq!(rules.rules().len(), 3);
        assert_eq!(rules.rules()[2].mode, Mode::Shadow);
        assert_eq!(rules.destinations.deny_countries, ["CU"]);
        let text = rules.to_string();
        assert_eq!(
            text,
            "client(ip,to)=3/1m,10/1d; number(to)=5/1m,20/1d; range(ip,prefix:6)~shadow=10/1h; \
             ipv6=/56; allow=10.0.0.0/8"
        );
        let back = Ruleset::parse_text(&text).unwrap();
        assert_eq!(back.rules(), rules.rules());
        assert_eq!(back.clients.ipv6_prefix, 56);
        assert_eq!(back.to_string(), text);
    }

    #[test]
    fn the_shipped_example_policy_parses() {
        let example =
            Ruleset::parse_toml(include_str!("../../deploy/policy.example.toml")).unwrap();
        assert_eq!(example.rules().len(), 4);
        assert_eq!(
            Ruleset::parse_text(&example.to_string()).unwrap().rules(),
            example.rules()
        );
    }

    #[test]
    fn the_seed_rule_prints_as_todays_policy_text() {
        let seed = Ruleset::seed(Policy::default());
        assert_eq!(seed.to_string(), "3/1m,10/1d");
        assert_eq!(Ruleset::parse_text("3/1m,10/1d").unwrap(), seed);
        assert_eq!(
            seed.rules()[0].window_name(&seed.primary().windows()[0]),
            "1m"
        );
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        let err = |text: &str| Ruleset::parse_toml(text).unwrap_err().to_string();
        assert!(
            err("[[rule]]\nname = \"a\"\nkey = [\"ip\"\nlimits = \"1/1m\"")
                .starts_with("line 4: missing comma")
        );
        let bad_limits = "[[rule]]\nname = \"a\"\nkey = [\"ip\"]\nlimits = \"1/1m\"\n\n[[rule]]\nname = \"b\"\nkey = [\"to\"]\nlimits = \"x\"\n";
        let e = err(bad_limits);
        assert!(e.starts_with("line 6:") && e.contains("rule `b`"), "{e}");
        assert!(
            err("[[rule]]\nname = \"a\"\nkey = [\"city\"]\nlimits = \"1/1m\"")
                .contains("unknown dimension `city`")
        );
        assert!(
            err("[[rule]]\nname = \"a\"\nkey = [\"prefix\"]\nlimits = \"1/1m\"")
                .contains("prefix_digits")
        );
        assert!(err("[clients]\nipv6_prefix = 200\n").contains("line 2"));
        assert!(err("[destinations]\n\ndeny_number_types = [\"bogus\"]\n[[rule]]\nname = \"a\"\nkey = [\"ip\"]\nlimits = \"1/1m\"").starts_with("line 3:"));
        // A short-number category no destination ever has would deny nothing: refused.
        let short_code = err(
            "[destinations]\ndeny_number_types = [\"short_code\"]\n[[rule]]\nname = \"a\"\nkey = [\"ip\"]\nlimits = \"1/1m\"",
        );
        assert!(
            short_code.contains("`short_code` is not a number type"),
            "{short_code}"
        );
        assert!(err("").contains("no [[rule]]"));
        assert!(
            err("[[rule]]\nname = \"a\"\nkey = [\"ip\"]\nlimits = \"1/1m\"\nlimit = 3")
                .contains("line 5")
        );
    }

    #[test]
    fn ipv6_clients_are_their_network_and_ipv4_their_address() {
        let clients = Clients::default();
        let net = |ip: &str| clients.network(ip.parse().unwrap());
        assert_eq!(net("203.0.113.7"), "203.0.113.7");
        assert_eq!(net("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
        assert_eq!(net("::ffff:198.51.100.1"), "198.51.100.1");
        let wide = Clients {
            ipv4_prefix: 24,
            ..Clients::default()
        };
        assert_eq!(
            wide.network("198.51.100.77".parse().unwrap()),
            "198.51.100.0/24"
        );
        // Only a client that is not the address's own text is marked as masked in the event.
        let plain = Clients::default();
        assert_eq!(plain.masked_network("198.51.100.77".parse().unwrap()), None);
        assert_eq!(
            plain.masked_network("::ffff:198.51.100.77".parse().unwrap()),
            Some("198.51.100.77".to_owned())
        );
        assert!(
            plain
                .masked_network("2001:db8::1".parse().unwrap())
                .is_some()
        );
    }

    #[test]
    fn destinations_and_denied_clients_block_with_a_reason() {
        let rules = Ruleset::parse_toml(FILE).unwrap();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let dest = |country, number_type| Destination {
            country: Some(country),
            number_type: Some(number_type),
        };
        assert_eq!(rules.blocks(ip, &dest("US", "mobile")), None);
        assert_eq!(
            rules.blocks(ip, &dest("CU", "mobile")),
            Some(BlockReason::Country)
        );
        assert_eq!(
            rules.blocks(ip, &dest("GB", "premium_rate")),
            Some(BlockReason::NumberType)
        );
        assert_eq!(
            rules.blocks("192.0.2.9".parse().unwrap(), &dest("US", "mobile")),
            Some(BlockReason::Client)
        );
        let mut only_us = rules.clone();
        only_us.destinations.allow_countries = vec!["US".into()];
        assert_eq!(
            only_us.blocks(ip, &dest("GB", "mobile")),
            Some(BlockReason::Country)
        );
    }

    #[test]
    fn rule_keys_follow_their_dimensions() {
        let rules = Ruleset::parse_toml(FILE).unwrap();
        let subject = Subject::direct("198.51.100.1", "+14155550123", Some("US"));
        let keys: Vec<Option<String>> = rules
            .rules()
            .iter()
            .map(|r| r.key_value(&subject))
            .collect();
        assert_eq!(
            keys,
            [
                Some("198.51.100.1|+14155550123".to_owned()),
                Some("+14155550123".to_owned()),
                Some("198.51.100.1|141555".to_owned())
            ]
        );
    }

    #[test]
    fn api_client_rules_judge_only_api_clients_and_ip_rules_only_known_ips() {
        let rules = Ruleset::parse_toml(
            "[[rule]]\nname = \"client\"\nkey = [\"ip\", \"to\"]\nlimits = \"3/1m\"\n\n\
             [[rule]]\nname = \"app\"\nkey = [\"api_client\", \"country\"]\nlimits = \"100/1m\"\n",
        )
        .unwrap();
        assert_eq!(
            Ruleset::parse_text(&rules.to_string()).unwrap().rules(),
            rules.rules()
        );
        let keys = |subject: &Subject<'_>| -> Vec<Option<String>> {
            rules.rules().iter().map(|r| r.key_value(subject)).collect()
        };
        let direct = Subject::direct("198.51.100.1", "+14155550123", Some("US"));
        assert_eq!(
            keys(&direct),
            [Some("198.51.100.1|+14155550123".to_owned()), None]
        );
        let sid = "AC0123456789abcdef0123456789abcdef";
        let with_user = Subject {
            api_client: Some(sid),
            ..direct
        };
        assert_eq!(
            keys(&with_user),
            [
                Some("198.51.100.1|+14155550123".to_owned()),
                Some(format!("{sid}|US"))
            ]
        );
        let server_only = Subject {
            ip_known: false,
            ..with_user
        };
        assert_eq!(keys(&server_only), [None, Some(format!("{sid}|US"))]);
    }
}
