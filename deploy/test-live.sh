#!/usr/bin/env bash
# deploy/test-live.sh: the monitoring against a running smsgate (started by someone else).
#
#   SMSGATE_URL=http://127.0.0.1:3000 [SMSGATE_ADMIN_TOKEN=...] deploy/test-live.sh
#
# Starts a real Prometheus (the Debian package's binary; installed when missing) on a free
# loopback port with a temporary config and storage, scraping SMSGATE_URL every second and
# loading deploy/prometheus/alerts.yml; it is stopped on exit. Then:
#   - sends a few POST /api/sms (bounded: at most LIVE_MAX_REQUESTS) and asserts through
#     Prometheus's HTTP API that sum(smsgate_requests_total) moved by as many;
#   - asserts every smsgate_* metric that alerts.yml and the Grafana dashboard use appears
#     in the process's /metrics (histograms as _bucket/_count/_sum), except the allow-listed
#     ones below when the process has had no reason to record them yet;
#   - asserts every alert rule evaluates without error and every dashboard query runs.
# Ends with `deploy: N passed, N failed, N skipped`; exits non-zero on any failure.
#
# The target must be on this machine (loopback): the script sends it real requests.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=deploy/tools/ensure-tools.sh
. "$ROOT/deploy/tools/ensure-tools.sh"

: "${SMSGATE_URL:?set SMSGATE_URL to a running smsgate, e.g. http://127.0.0.1:3000}"
SMSGATE_URL="${SMSGATE_URL%/}"
TOKEN="${SMSGATE_ADMIN_TOKEN:-}"
MAX_REQUESTS="${LIVE_MAX_REQUESTS:-12}"
WAIT_SECONDS="${LIVE_WAIT_SECONDS:-30}"

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
skip() { skipped=$((skipped + 1)); echo "skip - $*"; }
finish() {
    echo
    echo "deploy: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit $?
}

# Metrics a healthy process may not have recorded yet, with the reason. Each is checked
# when present and reported as skipped when absent.
declare -A ALLOW=(
    [smsgate_dead_letters_total]="recorded only when an entry is moved to the dead-letter stream"
    [smsgate_shadow_violations_total]="exists only when the policy (SMSGATE_POLICY) has a shadow rule"
    [smsgate_archiver_postgres_errors_total]="recorded only when an archive transaction fails"
    [smsgate_archiver_insert_duration_seconds]="recorded after the first archive batch (SMSGATE_ARCHIVE_INTERVAL, 10m by default)"
    [smsgate_archiver_batch_size]="recorded after the first archive batch (SMSGATE_ARCHIVE_INTERVAL, 10m by default)"
    [smsgate_archiver_batch_duration_seconds]="recorded after the first archive batch (SMSGATE_ARCHIVE_INTERVAL, 10m by default)"
    [smsgate_archiver_events_archived_total]="recorded after the first archive batch (SMSGATE_ARCHIVE_INTERVAL, 10m by default)"
    [smsgate_provider_latency_seconds]="recorded after the dispatcher's first provider call"
    [smsgate_provider_receipts_total]="recorded only when a provider receipt arrives"
    [smsgate_delivery_scheduled]="set by the dispatcher's first schedule step"
)
# Metrics of the roles a single-role process does not run.
INGEST_ONLY="smsgate_requests_total smsgate_violations_total smsgate_shadow_violations_total smsgate_blocked_total smsgate_redis_script_duration_seconds"
PROJECTOR_ONLY="smsgate_projector_events_projected_total smsgate_projector_lag_entries smsgate_projector_lag_seconds smsgate_sse_clients"
DISPATCHER_ONLY="smsgate_delivery_status_total smsgate_delivery_attempts_total smsgate_provider_latency_seconds smsgate_delivery_scheduled smsgate_status_callbacks_total smsgate_dispatcher_lag_entries smsgate_dispatcher_lag_seconds"
ARCHIVER_ONLY="smsgate_archiver_events_archived_total smsgate_archiver_batch_size smsgate_archiver_batch_duration_seconds smsgate_archiver_insert_duration_seconds smsgate_archiver_lag_entries smsgate_archiver_lag_seconds smsgate_archiver_postgres_errors_total"

ensure_prometheus
ensure_venv

TMP="$(mktemp -d)"
PROM_PID=""
cleanup() {
    if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
        kill "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

auth=()
if [ -n "$TOKEN" ]; then
    printf '%s' "$TOKEN" >"$TMP/token"
    auth=(-H "@$TMP/headers")
    printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/headers"
fi

# ------------------------------------------------------------------ the target
echo "# target $SMSGATE_URL"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$SMSGATE_URL/healthz" || true)"
if [ "$code" = 200 ]; then ok "GET /healthz answers 200"; else
    fail "GET /healthz answers 200 (got ${code:-no answer})"
    finish
fi
if curl -sf --max-time 5 "${auth[@]}" "$SMSGATE_URL/metrics" >"$TMP/metrics.before"; then
    ok "GET /metrics answers"
else
    fail "GET /metrics answers"
    finish
fi
role="$(sed -n 's/^smsgate_build_info{.*role="\([a-z]*\)".*/\1/p' "$TMP/metrics.before" | head -1)"
echo "role: ${role:-unknown (no smsgate_build_info)}"
if [ -n "$role" ]; then ok "smsgate_build_info names the role ($role)"; else
    fail "smsgate_build_info{role=...} is exported"
    role=serve
fi

# ------------------------------------------------------------------ prometheus
echo "# prometheus"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PROM="http://127.0.0.1:$PORT"
cp deploy/prometheus/alerts.yml "$TMP/alerts.yml"
"$PY" - "$SMSGATE_URL" "$TMP" "${TOKEN:+token}" >"$TMP/prometheus.yml" <<'EOF'
import sys, urllib.parse, yaml
url, tmp, token = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlsplit(url)
job = {
    "job_name": "smsgate-live",
    "scrape_interval": "1s",
    "scrape_timeout": "1s",
    "scheme": u.scheme or "http",
    "metrics_path": (u.path or "") + "/metrics",
    "static_configs": [{"targets": [u.netloc]}],
}
if token:
    job["authorization"] = {"type": "Bearer", "credentials_file": f"{tmp}/token"}
print(yaml.safe_dump({
    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
    "rule_files": [f"{tmp}/alerts.yml"],
    "scrape_configs": [job],
}, sort_keys=False))
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!

# query EXPR -> the JSON answer of /api/v1/query
query() { curl -sf --max-time 5 --data-urlencode "query=$1" "$PROM/api/v1/query"; }
# scalar EXPR -> the first sample's value, or "" when the result is empty
scalar() {
    query "$1" | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
wait_for() { # wait_for SECONDS COMMAND...: retry until the command succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

if wait_for "$WAIT_SECONDS" curl -sf "$PROM/-/ready"; then
    ok "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') ready on 127.0.0.1:$PORT"
else
    fail "prometheus ready on 127.0.0.1:$PORT"
    sed 's/^/    /' "$TMP/prometheus.log"
    finish
fi
target_up() { [ "$(scalar 'up{job="smsgate-live"}')" = 1 ]; }
if wait_for "$WAIT_SECONDS" target_up; then ok "prometheus scrapes $SMSGATE_URL/metrics (up == 1)"; else
    fail "prometheus scrapes $SMSGATE_URL/metrics (up == 1)"
    query 'up' | sed 's/^/    /'
    curl -s "$PROM/api/v1/targets" | sed 's/^/    /'
    finish
fi

# ------------------------------------------------------------------ traffic
echo "# traffic"
if [ "$role" = serve ] || [ "$role" = ingest ]; then
    before="$(scalar 'sum(smsgate_requests_total)')"
    before="${before:-0}"
    # One client (this host, one number) until the policy rejects it once, and one invalid
    # body: accepted, rejected and invalid outcomes. Bounded by MAX_REQUESTS.
    to="+1415555$(printf '%04d' $((RANDOM % 100 + 100)))"
    sent=0 accepted=0 rejected=0 other=""
    while [ "$sent" -lt "$MAX_REQUESTS" ]; do
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
            -H 'Content-Type: application/json' \
            --data "{\"to\": \"$to\", \"message\": \"deploy/test-live.sh $sent\"}" \
            "$SMSGATE_URL/api/sms" || true)"
        sent=$((sent + 1))
        case "$code" in
            202) accepted=$((accepted + 1)) ;;
            429) rejected=$((rejected + 1)); break ;;
            *) other="$other $code" ;;
        esac
    done
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
        -H 'Content-Type: application/json' --data '{"to": ' "$SMSGATE_URL/api/sms" || true)"
    sent=$((sent + 1))
    echo "sent $sent POST /api/sms: $accepted accepted, $rejected rejected, malformed -> $code${other:+, unexpected:$other}"
    if [ -z "$other" ] && [ "$accepted" -ge 1 ] && [ "$code" = 400 ]; then
        ok "POST /api/sms answers 202, then 429 once the client's quota is used, and 400 to bad JSON"
    else
        fail "POST /api/sms answers 202/429 and 400 to bad JSON (got accepted=$accepted rejected=$rejected malformed=$code unexpected:${other:- none})"
    fi
    moved() {
        local now
        now="$(scalar 'sum(smsgate_requests_total)')"
        [ -n "$now" ] && "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) - float(sys.argv[2]) >= int(sys.argv[3]) else 1)' "$now" "$before" "$sent"
    }
    if wait_for "$WAIT_SECONDS" moved; then
        ok "sum(smsgate_requests_total) moved by $sent in Prometheus ($before -> $(scalar 'sum(smsgate_requests_total)'))"
    else
        fail "sum(smsgate_requests_total) moved by $sent in Prometheus (before $before, now $(scalar 'sum(smsgate_requests_total)'))"
    fi
    outcomes="$(query 'sum by (outcome) (smsgate_requests_total)' |
        "$PY" -c 'import json,sys; print(" ".join(sorted(r["metric"].get("outcome","") for r in json.load(sys.stdin)["data"]["result"])))')"
    if [[ " $outcomes " == *" accepted "* && " $outcomes " == *" invalid "* ]]; then
        ok "smsgate_requests_total has the outcomes sent ($outcomes)"
    else
        fail "smsgate_requests_total has outcomes accepted and invalid (got: ${outcomes:-none})"
    fi
else
    skip "POST /api/sms traffic (role $role does not serve the public API)"
fi
if [ "$role" = serve ] || [ "$role" = projector ]; then
    # One short-lived live-feed client, so smsgate_sse_clients has been set.
    curl -s -N --max-time 2 "${auth[@]}" -o /dev/null "$SMSGATE_URL/api/live" || true
fi

# ------------------------------------------------------------------ metric names
echo "# metric names used by alerts.yml and the Grafana dashboard"
"$PY" deploy/tools/deploycheck.py used-metrics >"$TMP/used-metrics"
# exported NAME TYPE FILE: NAME has a sample in FILE (a histogram through its series)
exported() {
    local pattern="^${1}[{ ]"
    [ "$2" = histogram ] && pattern="^${1}_(bucket|count|sum)[{ ]"
    grep -Eq "$pattern" "$3"
}
# why_absent NAME: the allow-list reason (or role reason) NAME may be missing, or nothing
why_absent() {
    local reason="${ALLOW[$1]:-}"
    case "$role" in
        ingest)
            [[ " $PROJECTOR_ONLY $ARCHIVER_ONLY $DISPATCHER_ONLY " == *" $1 "* ]] && reason="not an ingest metric"
            [ "$1" = smsgate_stream_length ] && reason="may be kept only by the roles that read the stream"
            ;;
        projector) [[ " $INGEST_ONLY $ARCHIVER_ONLY $DISPATCHER_ONLY " == *" $1 "* ]] && reason="not a projector metric" ;;
        archiver) [[ " $INGEST_ONLY $PROJECTOR_ONLY $DISPATCHER_ONLY " == *" $1 "* ]] && reason="not an archiver metric" ;;
        dispatcher) [[ " $INGEST_ONLY $PROJECTOR_ONLY $ARCHIVER_ONLY " == *" $1 "* ]] && reason="not a dispatcher metric" ;;
    esac
    printf '%s' "$reason"
}
# Gauges may be set by a periodic task: give the required ones a few seconds to appear.
required_present() {
    curl -sf --max-time 5 "${auth[@]}" "$SMSGATE_URL/metrics" >"$TMP/metrics.after" || return 1
    local name type
    while IFS=$'\t' read -r name type; do
        exported "$name" "$type" "$TMP/metrics.after" || [ -n "$(why_absent "$name")" ] || return 1
    done <"$TMP/used-metrics"
}
wait_for 15 required_present || true
while IFS=$'\t' read -r name type; do
    if exported "$name" "$type" "$TMP/metrics.after"; then
        ok "$name ($type) is exported"
        continue
    fi
    reason="$(why_absent "$name")"
    if [ -n "$reason" ]; then
        skip "$name ($type) is absent: $reason"
    else
        fail "$name ($type) is not in $SMSGATE_URL/metrics"
    fi
done <"$TMP/used-metrics"

# ------------------------------------------------------------------ rules and queries
echo "# alert rules and dashboard queries on live data"
rules_healthy() {
    curl -sf "$PROM/api/v1/rules" | "$PY" -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = ["%s: %s %s" % (r["name"], r.get("health"), r.get("lastError", "")) for r in rules if r.get("health") != "ok"]
if not rules or bad:
    print("\n".join(bad) or "no rules loaded")
    sys.exit(1)
print(len(rules))'
}
if wait_for 10 rules_healthy; then
    ok "all $(rules_healthy) alert rules evaluate without error"
else
    fail "alert rules evaluate without error"
    rules_healthy | sed 's/^/    /' || true
fi
firing="$(query 'ALERTS{alertstate="firing"}' | "$PY" -c 'import json,sys; print(" ".join(sorted(r["metric"]["alertname"] for r in json.load(sys.stdin)["data"]["result"])))')"
echo "firing alerts: ${firing:-none}"
if [[ " $firing " == *" SmsgateRoleDown "* ]]; then fail "SmsgateRoleDown is not firing"; else ok "SmsgateRoleDown is not firing"; fi

bad_queries=0
nqueries=0
while IFS= read -r line; do
    expr="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["expr"])' "$line")"
    panel="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["panel"])' "$line")"
    nqueries=$((nqueries + 1))
    if ! answer="$(query "$expr")" || ! grep -q '"status":"success"' <<<"$answer"; then
        bad_queries=$((bad_queries + 1))
        echo "    $panel: $expr -> ${answer:-no answer}"
    fi
done < <("$PY" deploy/tools/deploycheck.py dashboard-exprs)
if [ "$bad_queries" -eq 0 ]; then ok "all $nqueries dashboard queries run on Prometheus"; else
    fail "$bad_queries of $nqueries dashboard queries fail on Prometheus"
fi
if [ "$role" = serve ] || [ "$role" = ingest ]; then
    has_rate() { [ -n "$(scalar 'sum by (outcome) (rate(smsgate_requests_total[1m]))')" ]; }
    if wait_for 10 has_rate; then ok "the 'Request rate by outcome' query has data"; else
        fail "the 'Request rate by outcome' query has data"
    fi
fi

finish
