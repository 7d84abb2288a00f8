#!/usr/bin/env python3
"""Static checks of the deployment files, used by deploy/test.sh and deploy/test-live.sh.

Every check prints one line, `ok   - <what>`, `FAIL - <what>` (followed by indented
details) or `skip - <what>`; the calling script counts them. Needs PyYAML and jsonschema
(deploy/test.sh installs them into a venv under .local/).

Subcommands:
  compose            docker-compose.yml: Compose-spec schema, variables, wiring, secrets
  grafana            provisioning YAML and the dashboard JSON
  alerts             alerts.yml conventions and alerts_test.yml coverage
  metric-names       every smsgate_* name used by the dashboard and alerts is in docs/metrics.md
  dashboard-rules F  write the dashboard's PromQL as a rules file F (for `promtool check rules`)
  used-metrics       print the smsgate_* base names the dashboard and alerts use (one a line)
  dashboard-exprs    print the dashboard's PromQL, one JSON string a line, with Grafana's
                     $__ variables replaced
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = DEPLOY / "compose-spec.schema.json"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
NGINX = DEPLOY / "proxy" / "nginx.conf"
DOCKERFILE = DEPLOY / "Dockerfile"
GRAFANA_DS = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "smsgate.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "smsgate.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

SMSGATE_ROLES = {"ingest", "projector", "archiver", "dispatcher"}
REQUIRED_SERVICES = SMSGATE_ROLES | {
    "redis", "postgres", "proxy", "prometheus", "alertmanager", "grafana", "redis-exporter",
    "postgres-exporter",
}
# Secrets only some deployments need (the twilio provider's token, client callbacks, the
# Twilio-compatible API) may default to empty: unset turns the feature off. Every other
# secret is required. Neither may ever be a literal.
OPTIONAL_SECRETS = {"TWILIO_AUTH_TOKEN", "SMSGATE_CALLBACK_SECRET", "SMSGATE_API_SECRET"}
SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|_PASS$", re.I)
REQUIRED_PANELS = [
    "Request rate by outcome",
    "429 rate by window",
    "HTTP latency p50 / p99",
    "Stream length and archive lag",
    "Projection lag",
    "Dead letters",
    "Redis memory",
    "Postgres insert time",
    "Delivery status per minute",
    "Delivery failure ratio",
    "Provider latency p50 / p99",
    "Delivery backlog",
]
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
METRIC_RE = re.compile(r"\bsmsgate_[a-z0-9_]*[a-z0-9]")
HIST_SUFFIXES = ("_bucket", "_count", "_sum")

failures = 0


def ok(what: str) -> None:
    print(f"ok   - {what}")


def fail(what: str, details: str | list[str] = "") -> None:
    global failures
    failures += 1
    print(f"FAIL - {what}")
    if isinstance(details, str):
        details = [details] if details else []
    for line in details:
        print(f"    {line}")


def skip(what: str) -> None:
    print(f"skip - {what}")


def check(what: str, problems: list[str]) -> None:
    if problems:
        fail(what, problems)
    else:
        ok(what)


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------- env / interpolation

def parse_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if not m:
            raise ValueError(f"{path.name}:{n}: not KEY=VALUE: {raw!r}")
        env[m.group(1)] = m.group(2)
    return env


VAR_RE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def variables_in(text: str) -> set[str]:
    out = set()
    for m in VAR_RE.finditer(text):
        name = m.group("braced") or m.group("named")
        if name:
            out.add(name)
    return out


def interpolate(value, env: dict[str, str]):
    """Compose-style interpolation of every string in a YAML document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op") or "", m.group("arg") or ""
        cur = env.get(name)
        unset_or_empty = cur is None or (op.startswith(":") and cur == "")
        if op.endswith("-"):
            return arg if unset_or_empty else cur
        if op.endswith("?"):
            if unset_or_empty:
                raise ValueError(f"required variable {name} is missing: {arg}")
            return cur
        if op.endswith("+"):
            return "" if unset_or_empty else arg
        return cur or ""

    return VAR_RE.sub(repl, value)


# --------------------------------------------------------------------------- compose

def is_duration(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"((\d+(\.\d+)?)(ns|us|ms|s|m|h))+", value) is not None


def is_subnet(value) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except (TypeError, ValueError):
        return False


def compose_checks() -> None:
    import jsonschema

    raw_text = COMPOSE.read_text(encoding="utf-8")
    raw = yaml.safe_load(raw_text)
    try:
        env = parse_env_file(ENV_EXAMPLE)
    except ValueError as e:
        fail(".env.example parses as KEY=VALUE lines", str(e))
        return
    ok(".env.example parses as KEY=VALUE lines")

    used = variables_in(raw_text)
    check(".env.example documents every variable docker-compose.yml uses",
          [f"{v} is used in docker-compose.yml but not in .env.example" for v in sorted(used - set(env))])
    check("every variable in .env.example is used by docker-compose.yml",
          [f"{v} is in .env.example but docker-compose.yml does not use it" for v in sorted(set(env) - used)])

    try:
        doc = interpolate(raw, env)
    except ValueError as e:
        fail("docker-compose.yml interpolates with .env.example", str(e))
        return
    ok("docker-compose.yml interpolates with .env.example")

    # Required variables: without a value, compose must refuse to start.
    try:
        interpolate(raw, {})
        fail("secrets are required variables (compose refuses to start without them)",
             "docker-compose.yml interpolated with an empty environment")
    except ValueError:
        ok("secrets are required variables (compose refuses to start without them)")

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The vendored schema says "http://json-schema.org/draft/2019-09/schema#", a spelling
    # jsonschema does not map to its 2019-09 validator by itself.
    if "2019-09" in str(schema.get("$schema", "")):
        cls = jsonschema.Draft201909Validator
    else:
        cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = jsonschema.FormatChecker()
    checker.checks("duration")(is_duration)
    checker.checks("subnet_ip_address")(is_subnet)
    validator = cls(schema, format_checker=checker)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    check(f"docker-compose.yml validates against the Compose spec schema ({SCHEMA.name}, {cls.__name__})",
          [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors])

    services = doc.get("services", {})
    check("compose has every service (redis, postgres, 3 roles, proxy, monitoring)",
          [f"service {s} missing" for s in sorted(REQUIRED_SERVICES - set(services))])
    if REQUIRED_SERVICES - set(services):
        return

    # Redis durability and storage.
    redis = services["redis"]
    cmd = " ".join(redis.get("command", [])) if isinstance(redis.get("command"), list) else str(redis.get("command", ""))
    problems = []
    if not str(redis.get("image", "")).startswith("redis:7"):
        problems.append(f"image is {redis.get('image')}, want redis:7")
    for want in ("--appendonly yes", "--appendfsync everysec"):
        if want not in cmd:
            problems.append(f"command lacks {want!r}: {cmd!r}")
    if not any(str(v).endswith(":/data") for v in redis.get("volumes", [])):
        problems.append("no volume at /data")
    if "healthcheck" not in redis:
        problems.append("no healthcheck")
    check("redis: redis:7, appendonly yes, appendfsync everysec, volume, healthcheck", problems)

    pg = services["postgres"]
    problems = []
    if not str(pg.get("image", "")).startswith("postgres:16"):
        problems.append(f"image is {pg.get('image')}, want postgres:16")
    if not any("/var/lib/postgresql/data" in str(v) for v in pg.get("volumes", [])):
        problems.append("no volume at /var/lib/postgresql/data")
    if "healthcheck" not in pg:
        problems.append("no healthcheck")
    raw_pw = raw["services"]["postgres"].get("environment", {}).get("POSTGRES_PASSWORD", "")
    if not re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", str(raw_pw)):
        problems.append(f"POSTGRES_PASSWORD should be ${{POSTGRES_PASSWORD:?...}}, is {raw_pw!r}")
    check("postgres: postgres:16, volume, healthcheck, password from env", problems)

    # No literal secrets anywhere in the raw file.
    problems = []
    for name, svc in raw["services"].items():
        envmap = svc.get("environment") or {}
        if isinstance(envmap, list):
            envmap = dict(item.split("=", 1) if "=" in item else (item, "") for item in envmap)
        for key, val in envmap.items():
            sval = "" if val is None else str(val)
            optional = key in OPTIONAL_SECRETS and sval == f"${{{key}:-}}"
            if SECRET_KEY.search(key) and not optional and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}", sval):
                problems.append(f"{name}.{key} = {sval!r} is not a required ${{VAR:?...}} reference")
            for m in re.finditer(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]*)@", sval):
                if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}", m.group(1)):
                    problems.append(f"{name}.{key} embeds a literal password in a URL")
    check("no hard-coded secrets: passwords and tokens are ${VAR:?...} references", problems)

    # The smsgate roles: one image, one build, a role each.
    problems = []
    images = {services[r].get("image") for r in SMSGATE_ROLES}
    if len(images) != 1:
        problems.append(f"roles use different images: {images}")
    for role in sorted(SMSGATE_ROLES):
        svc = services[role]
        build = svc.get("build") or {}
        dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
        if dockerfile != "deploy/Dockerfile" or not (ROOT / build.get("context", ".") / dockerfile).is_file():
            problems.append(f"{role}: build.dockerfile should be deploy/Dockerfile (context .), is {build!r}")
        if svc.get("command") != [role]:
            problems.append(f"{role}: command should be [{role!r}], is {svc.get('command')!r}")
        e = svc.get("environment") or {}
        for key in ("REDIS_URL", "DATABASE_URL", "SMSGATE_LISTEN", "SMSGATE_ADMIN_TOKEN", "SMSGATE_TRUSTED_PROXIES"):
            if not e.get(key):
                problems.append(f"{role}: environment lacks {key}")
        if str(e.get("SMSGATE_LISTEN", "")).rsplit(":", 1)[-1] != "3000":
            problems.append(f"{role}: SMSGATE_LISTEN should use port 3000")
    replicas = (services["ingest"].get("deploy") or {}).get("replicas")
    if replicas != 2:
        problems.append(f"ingest: deploy.replicas should be 2, is {replicas!r}")
    check("roles: one image built from deploy/Dockerfile, `ingest|projector|archiver|dispatcher` commands, 2 ingest replicas",
          problems)

    # depends_on: always service_healthy, on services that have a health check.
    dockerfile_health = "HEALTHCHECK" in DOCKERFILE.read_text(encoding="utf-8")
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on is a list (no condition)")
            continue
        for dep, spec in deps.items():
            if (spec or {}).get("condition") != "service_healthy":
                problems.append(f"{name} -> {dep}: condition is not service_healthy")
            target = services.get(dep)
            if target is None:
                problems.append(f"{name} -> {dep}: no such service")
            elif "healthcheck" not in target and not (dep in SMSGATE_ROLES and dockerfile_health):
                problems.append(f"{name} -> {dep}: {dep} has no healthcheck")
    for role in SMSGATE_ROLES:
        deps = services[role].get("depends_on") or {}
        for dep in ("redis", "postgres"):
            if dep not in deps:
                problems.append(f"{role} does not depend on {dep}")
    for role in SMSGATE_ROLES:
        if role not in (services["proxy"].get("depends_on") or {}):
            problems.append(f"proxy does not depend on {role}")
    check("depends_on: every dependency waits for service_healthy, and has a health check", problems)

    # Trusted proxies: exactly the proxy's fixed address, inside the subnet, outside the dynamic range.
    problems = []
    nets = services["proxy"].get("networks") or {}
    proxy_ip = None
    if isinstance(nets, dict):
        for net in nets.values():
            if isinstance(net, dict) and net.get("ipv4_address"):
                proxy_ip = net["ipv4_address"]
    if not proxy_ip:
        problems.append("proxy has no fixed ipv4_address")
    else:
        for role in sorted(SMSGATE_ROLES):
            tp = services[role].get("environment", {}).get("SMSGATE_TRUSTED_PROXIES")
            if tp != f"{proxy_ip}/32":
                problems.append(f"{role}: SMSGATE_TRUSTED_PROXIES is {tp!r}, want {proxy_ip}/32")
        for net_name, net in (doc.get("networks") or {}).items():
            for cfg in ((net or {}).get("ipam") or {}).get("config", []):
                subnet = ipaddress.ip_network(cfg["subnet"])
                if ipaddress.ip_address(proxy_ip) not in subnet:
                    problems.append(f"proxy address {proxy_ip} is outside {net_name} subnet {subnet}")
                if cfg.get("ip_range") and ipaddress.ip_address(proxy_ip) in ipaddress.ip_network(cfg["ip_range"]):
                    problems.append(f"proxy address {proxy_ip} is inside the dynamic ip_range {cfg['ip_range']}")
    check("X-Forwarded-For is trusted only from the proxy's fixed address", problems)

    problems = []
    ports = [str(p) for p in services["proxy"].get("ports", [])]
    if not any(p.endswith(":3000") and p.split(":")[-2] == "3000" for p in ports):
        problems.append(f"proxy does not publish host port 3000 (ports: {ports})")
    for name in ("prometheus", "alertmanager", "grafana"):
        for p in services[name].get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                problems.append(f"{name} publishes {p} beyond loopback")
    check("ports: dashboard/API on :3000 through the proxy; Prometheus, Alertmanager and Grafana on loopback", problems)

    # Alerts reach someone: Prometheus sends to the alertmanager service, whose webhook URL is
    # a required variable handed to the entrypoint that renders it into the config.
    problems = []
    prom_cfg = load_yaml(PROM_CONFIG)
    am_targets = [t for am in (prom_cfg.get("alerting") or {}).get("alertmanagers", [])
                  for sc in am.get("static_configs", []) for t in sc.get("targets", [])]
    if "alertmanager:9093" not in am_targets:
        problems.append(f"prometheus.yml alerting targets are {am_targets}, want alertmanager:9093")
    am_raw = raw["services"]["alertmanager"]
    hook = str((am_raw.get("environment") or {}).get("SMSGATE_ALERT_WEBHOOK_URL", ""))
    if not re.fullmatch(r"\$\{SMSGATE_ALERT_WEBHOOK_URL:\?[^}]+\}", hook):
        problems.append(f"alertmanager: SMSGATE_ALERT_WEBHOOK_URL should be a required ${{VAR:?...}}, is {hook!r}")
    if "/etc/smsgate/alertmanager/entrypoint.sh" not in " ".join(map(str, am_raw.get("entrypoint") or [])):
        problems.append("alertmanager: entrypoint is not deploy/alertmanager/entrypoint.sh")
    if "@SMSGATE_ALERT_WEBHOOK_URL@" not in ALERTMANAGER.read_text(encoding="utf-8"):
        problems.append(f"{ALERTMANAGER.relative_to(ROOT)} has no @SMSGATE_ALERT_WEBHOOK_URL@ to render")
    check("alerts reach someone: prometheus -> alertmanager -> webhook from SMSGATE_ALERT_WEBHOOK_URL", problems)

    # Bind mounts point at files that exist.
    problems = []
    for name, svc in services.items():
        for v in svc.get("volumes", []) or []:
            src = v.split(":", 1)[0] if isinstance(v, str) else (v or {}).get("source", "")
            if src.startswith(("./", "../", "/")):
                if not (ROOT / src).exists():
                    problems.append(f"{name}: bind mount source {src} does not exist")
    check("bind mounts refer to files in the repository", problems)

    problems = []
    for name, svc in services.items():
        image = str(svc.get("image", ""))
        if not image:
            problems.append(f"{name}: no image")
        elif ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{name}: image {image} is not pinned to a tag")
    check("every image is pinned to a tag (no :latest)", problems)

    # Prometheus scrapes every smsgate role and both exporters, at compose service names.
    prom = load_yaml(PROM_CONFIG)
    targets: dict[str, set[str]] = {}
    for job in prom.get("scrape_configs", []):
        hosts = set()
        for sc in job.get("static_configs", []):
            hosts |= {t.rsplit(":", 1)[0] for t in sc.get("targets", [])}
        for sd in job.get("dns_sd_configs", []):
            hosts |= set(sd.get("names", []))
        targets[job["job_name"]] = hosts
    problems = []
    scraped = set().union(*targets.values()) if targets else set()
    for svc in sorted(SMSGATE_ROLES | {"redis-exporter", "postgres-exporter"}):
        if svc not in scraped:
            problems.append(f"service {svc} is not scraped")
    for job, hosts in targets.items():
        for h in hosts - {"localhost"}:
            if h not in services:
                problems.append(f"job {job} scrapes {h}, which is not a compose service")
        if job.startswith("smsgate") and not (hosts & SMSGATE_ROLES):
            problems.append(f"job {job} does not scrape an smsgate role")
    for role in SMSGATE_ROLES:
        if not any(job.startswith("smsgate") and role in hosts for job, hosts in targets.items()):
            problems.append(f"role {role} is not scraped by a job named smsgate* (SmsgateRoleDown matches job=~\"smsgate.*\")")
    check("prometheus.yml scrapes every smsgate role (jobs smsgate-*) and both exporters", problems)

    # The proxy routes to compose services.
    conf = NGINX.read_text(encoding="utf-8")
    upstreams = dict(re.findall(r'set \$(\w+)\s+"([\w.-]+):\d+";', conf))
    problems = [f"nginx upstream ${v} -> {h} is not a compose service" for v, h in upstreams.items() if h not in services]
    routes = {
        "/api/sms": "ingest",
        "/api/history": "archiver",
        "/api/audit": "archiver",
        "/": "projector",
    }
    for path, role in routes.items():
        var = next((v for v, h in upstreams.items() if h == role), None)
        if var is None:
            problems.append(f"no upstream for {role}")
            continue
        if path == "/api/sms":
            block = re.search(r"location = /api/sms \{[^}]*\}", conf)
        elif path == "/":
            block = re.search(r"location / \{[^}]*\}", conf)
        else:
            block = re.search(r"location ~ \^/api/\(history\|audit\)[^{]*\{[^}]*\}", conf)
        if not block or f"proxy_pass http://${var}" not in block.group(0):
            problems.append(f"{path} is not proxied to {role}")
    if "X-Forwarded-For $remote_addr" not in conf:
        problems.append("the proxy must overwrite X-Forwarded-For with $remote_addr")
    check("proxy routes /api/sms -> ingest, /api/history|audit -> archiver, the rest -> projector", problems)


# --------------------------------------------------------------------------- grafana

def dashboard_targets(dash: dict):
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))
    for p in walk(dash.get("panels", [])):
        for t in p.get("targets", []) or []:
            if t.get("expr"):
                yield p, t
    for a in (dash.get("annotations") or {}).get("list", []):
        if a.get("expr"):
            yield {"id": "annotation", "title": a.get("name")}, a


def replace_grafana_vars(expr: str) -> str:
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def grafana_checks() -> None:
    problems = []
    try:
        ds = load_yaml(GRAFANA_DS)
        providers = load_yaml(GRAFANA_PROVIDERS)
    except yaml.YAMLError as e:
        fail("grafana provisioning files are valid YAML", str(e))
        return
    ok("grafana provisioning files are valid YAML")
    sources = ds.get("datasources", [])
    prom_ds = [d for d in sources if d.get("type") == "prometheus"]
    if ds.get("apiVersion") != 1 or len(prom_ds) != 1:
        problems.append("want apiVersion 1 and exactly one prometheus datasource")
    uid = prom_ds[0].get("uid") if prom_ds else None
    url = prom_ds[0].get("url", "") if prom_ds else ""
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    host = re.sub(r"^https?://", "", url).split(":")[0].split("/")[0]
    if host not in compose.get("services", {}):
        problems.append(f"datasource url {url} does not point at a compose service")
    check("grafana datasource: one Prometheus with a fixed uid at the compose service", problems)

    problems = []
    provs = providers.get("providers", [])
    if providers.get("apiVersion") != 1 or not provs:
        problems.append("want apiVersion 1 and a dashboard provider")
    mounts = {}
    for v in compose["services"].get("grafana", {}).get("volumes", []):
        if isinstance(v, str) and v.startswith("./"):
            src, dst = v.split(":")[:2]
            mounts[dst] = src
    for p in provs:
        path = (p.get("options") or {}).get("path")
        src = mounts.get(path)
        if not src:
            problems.append(f"provider path {path} is not a grafana bind mount in docker-compose.yml")
        elif not (ROOT / src / DASHBOARD.name).is_file():
            problems.append(f"provider path {path} is mounted from {src}, which lacks {DASHBOARD.name}")
    for dst, src in mounts.items():
        if dst.rstrip("/") == "/etc/grafana/provisioning" and (ROOT / src).resolve() != GRAFANA_DS.parents[1].resolve():
            problems.append(f"/etc/grafana/provisioning is mounted from {src}")
    check("grafana dashboard provider reads the mounted deploy/grafana/dashboards", problems)

    try:
        dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        fail(f"{DASHBOARD.relative_to(ROOT)} is valid JSON", str(e))
        return
    ok(f"{DASHBOARD.relative_to(ROOT)} is valid JSON")

    problems = []
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dash:
            problems.append(f"dashboard lacks {key}")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("panel ids are missing or not unique")
    for p in dash.get("panels", []):
        gp = p.get("gridPos") or {}
        if not gp or gp.get("x", 0) + gp.get("w", 0) > 24:
            problems.append(f"panel {p.get('title')!r}: bad gridPos {gp}")
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != uid:
            problems.append(f"panel {p.get('title')!r}: datasource uid is not {uid!r}")
        if not p.get("targets"):
            problems.append(f"panel {p.get('title')!r}: no queries")
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") not in (None, uid):
                problems.append(f"panel {p.get('title')!r}: query {t.get('refId')} uses another datasource")
    titles = {p.get("title") for p in dash.get("panels", [])}
    for want in REQUIRED_PANELS:
        if want not in titles:
            problems.append(f"no panel titled {want!r}")
    exprs = " ".join(t["expr"] for _, t in dashboard_targets(dash))
    for needle in ("histogram_quantile(0.5", "histogram_quantile(0.99", "smsgate_http_request_duration_seconds_bucket",
                   "redis_memory_used_bytes", "smsgate_archiver_insert_duration_seconds_bucket",
                   "smsgate_provider_latency_seconds_bucket", "smsgate_dispatcher_lag_seconds"):
        if needle not in exprs:
            problems.append(f"no query uses {needle}")
    check("dashboard: unique panels on the provisioned datasource, with every required panel", problems)


# --------------------------------------------------------------------------- alerts

def alert_rules() -> list[dict]:
    rules = []
    for g in load_yaml(ALERTS).get("groups", []):
        rules += [r for r in g.get("rules", []) if "alert" in r]
    return rules


def alerts_checks() -> None:
    rules = alert_rules()
    problems = []
    for r in rules:
        if (r.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{r['alert']}: severity label missing or not critical|warning|info")
        ann = r.get("annotations") or {}
        for key in ("summary", "description"):
            if not ann.get(key):
                problems.append(f"{r['alert']}: no {key} annotation")
    check(f"every alert ({len(rules)}) has a severity label and summary/description annotations", problems)

    names = {r["alert"] for r in rules}
    wanted = {
        "SmsgateRedisMemoryNearLimit": ["redis_memory_used_bytes", "redis_memory_max_bytes > 0", "0.9"],
        "SmsgateArchiveLagHigh": ["smsgate_archiver_lag_seconds > 1800"],
        "SmsgateProjectionLagHigh": ["smsgate_projector_lag_seconds > 30"],
        "SmsgatePostgresInsertSlow": ["histogram_quantile(0.99", "smsgate_archiver_insert_duration_seconds_bucket", "> 1"],
        "SmsgateHigh5xxRate": ['status=~"5.."', "> 0.01"],
        "SmsgateDeadLetters": ["increase(smsgate_dead_letters_total", "> 0"],
        "SmsgateRoleDown": ['up{job=~"smsgate.*"} == 0'],
        "SmsgateDeliveryFailureRatioHigh": ['smsgate_delivery_status_total{status=~"failed|expired"}', "> 0.05"],
        "SmsgateDeliveryBacklogOld": ["smsgate_dispatcher_lag_seconds > 300", "smsgate_dispatcher_lag_entries > 0"],
        "SmsgateProviderLatencyHigh": ["histogram_quantile(0.99", "smsgate_provider_latency_seconds_bucket", "> 2"],
    }
    fors = {"SmsgateArchiveLagHigh": "5m", "SmsgateProjectionLagHigh": "2m", "SmsgateHigh5xxRate": "5m",
            "SmsgateRoleDown": "1m"}
    problems = []
    by_name = {r["alert"]: r for r in rules}
    for name, needles in wanted.items():
        if name not in names:
            problems.append(f"alert {name} missing")
            continue
        expr = " ".join(str(by_name[name]["expr"]).split())
        for n in needles:
            if n not in expr:
                problems.append(f"{name}: expression lacks {n!r}: {expr}")
        if name in fors and by_name[name].get("for") != fors[name]:
            problems.append(f"{name}: for is {by_name[name].get('for')!r}, want {fors[name]}")
    check("alerts.yml has the required alerts with their thresholds and durations", problems)

    tests = load_yaml(ALERTS_TEST)
    firing = {n: 0 for n in names}
    quiet = {n: 0 for n in names}
    problems = []
    if str(ALERTS.name) not in [Path(f).name for f in tests.get("rule_files", [])]:
        problems.append("alerts_test.yml does not load alerts.yml")
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []) or []:
            n = a.get("alertname")
            if n not in names:
                problems.append(f"test {t.get('name')!r} names unknown alert {n}")
                continue
            if a.get("exp_alerts"):
                firing[n] += 1
            else:
                quiet[n] += 1
    for n in sorted(names):
        if not firing[n]:
            problems.append(f"{n}: no test case where it fires")
        if not quiet[n]:
            problems.append(f"{n}: no test case where it stays quiet")
    check("alerts_test.yml has a firing and a quiet case for every alert", problems)


# --------------------------------------------------------------------------- metric names

def documented_metrics() -> dict[str, str]:
    out = {}
    for m in re.finditer(r"^\|\s*`(smsgate_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", METRICS_DOC.read_text(encoding="utf-8"), re.M):
        out[m.group(1)] = m.group(2).lower()
    return out


def used_metric_names(files: list[Path]) -> dict[str, set[str]]:
    """smsgate_* names as written, each with the files that use it."""
    used: dict[str, set[str]] = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".json":
            # only the queries, not descriptions
            dash = json.loads(text)
            text = "\n".join(t["expr"] for _, t in dashboard_targets(dash))
        elif f == ALERTS:
            text = "\n".join(str(r.get("expr", "")) for g in load_yaml(f).get("groups", []) for r in g.get("rules", []))
        for name in METRIC_RE.findall(text):
            used.setdefault(name, set()).add(str(f.relative_to(ROOT)))
    return used


def base_name(name: str, documented: dict[str, str]) -> str:
    for suffix in HIST_SUFFIXES:
        if name.endswith(suffix) and documented.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return name


def metric_name_checks() -> None:
    documented = documented_metrics()
    if not documented:
        fail("docs/metrics.md lists metrics", "no `smsgate_*` rows found in its table")
        return
    for label, files in (("Grafana dashboard", [DASHBOARD]), ("alerts.yml", [ALERTS]), ("alerts_test.yml", [ALERTS_TEST])):
        used = used_metric_names(files)
        problems = []
        for name, where in sorted(used.items()):
            base = base_name(name, documented)
            if base not in documented:
                problems.append(f"{name} ({', '.join(sorted(where))}) is not in docs/metrics.md")
            elif base == name and documented[base] == "histogram":
                problems.append(f"{name} is a histogram: query {name}_bucket/_count/_sum")
        check(f"every smsgate_* metric in the {label} ({len(used)} names) is in docs/metrics.md", problems)


def print_used_metrics() -> None:
    documented = documented_metrics()
    names = {base_name(n, documented) for n in used_metric_names([DASHBOARD, ALERTS])}
    for n in sorted(names):
        print(f"{n}\t{documented.get(n, 'undocumented')}")


def dashboard_rules(out: str) -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rules = []
    for i, (panel, t) in enumerate(dashboard_targets(dash)):
        rules.append({"record": f"dashboard:panel_{panel.get('id')}:{t.get('refId', i)}".replace("-", "_"),
                      "expr": replace_grafana_vars(t["expr"])})
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, sort_keys=False)


def dashboard_exprs() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel, t in dashboard_targets(dash):
        print(json.dumps({"panel": panel.get("title"), "expr": replace_grafana_vars(t["expr"])}))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[0]
    if cmd == "compose":
        compose_checks()
    elif cmd == "grafana":
        grafana_checks()
    elif cmd == "alerts":
        alerts_checks()
    elif cmd == "metric-names":
        metric_name_checks()
    elif cmd == "dashboard-rules" and len(argv) == 2:
        dashboard_rules(argv[1])
    elif cmd == "used-metrics":
        print_used_metrics()
    elif cmd == "dashboard-exprs":
        dashboard_exprs()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main(sys.argv[1:]))
