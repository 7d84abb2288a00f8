#!/usr/bin/env bash
# Instructions per request on each side of a decision, counted by callgrind, so a change to
# the hot path can be compared before and after without the noise of a shared machine (this
# machine's VM exposes no hardware counters to `perf stat`).
#
#   scripts/bench-instructions.sh [-- extra bench flags, e.g. --distinct or --policy-file F]
#
#   1. server: `smsgate ingest` runs under callgrind with instrumentation off; it is switched
#      on, `smsgate bench --phases api` drives it, and the count is dumped: Ir / request;
#   2. redis: a private redis-server runs under callgrind the same way, once for
#      `--phases script` (the decision script) and once for `--phases baseline` (the plain
#      sliding-log script): Ir / decision of each, and their ratio.
# Needs a release build (SMSGATE_BIN names another binary) and valgrind (installed from
# Debian's packages when missing). DURATION (s per phase, default 10) and CONNECTIONS
# (default 8: callgrind runs the server about 50 times slower) override the defaults; KEEP=DIR
# keeps the callgrind output files there, for `callgrind_annotate`; SIDE=server or SIDE=redis
# counts one side only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/smsgate-target}
bin=${SMSGATE_BIN:-$target/release/smsgate}
[ -x "$bin" ] || { echo "build first: cargo build --release -p smsgate" >&2; exit 1; }
[ "${1:-}" = "--" ] && shift
extra=("$@")
duration=${DURATION:-10} connections=${CONNECTIONS:-8}
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq valgrind >/dev/null; else sudo apt-get install -y -qq valgrind >/dev/null; fi
fi
state=$(mktemp -d /tmp/smsgate-instructions.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$state"/*.callgrind.* "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Total instructions (Ir) of the newest dump of callgrind's output files under $1.
dumped_ir() {
  local newest
  newest=$(ls -t "$1".* 2>/dev/null | head -1)
  awk '/^(summary|totals):/ {print $2; exit}' "$newest"
}

# Requests one bench line reports: accepted + rejected + errors (columns 6 to 8).
requests_of() { awk -v phase="$1" '$1 == phase {print $6 + $7 + $8}'; }

wait_until() { for _ in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# A redis-server for the run, under callgrind when $1 is an output file prefix; sets
# redis_port and redis_pid.
start_redis() {
  redis_port=$(free_port)
  local server=(redis-server --port "$redis_port" --save '' --appendonly no --dir "$state")
  if [ -n "${1:-}" ]; then
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$1.%p" "${server[@]}" \
      >"$state/redis-$redis_port.log" 2>&1 &
  else
    "${server[@]}" >"$state/redis-$redis_port.log" 2>&1 &
  fi
  redis_pid=$!
  pids+=("$redis_pid")
  wait_until redis-cli -p "$redis_port" ping
}

bench() { "$bin" bench --connections "$connections" --duration "$duration" "${extra[@]}" "$@"; }

side=${SIDE:-both}
if [ "$side" != redis ]; then
echo "== server: smsgate ingest under callgrind, ${duration}s, $connections connections ${extra[*]}"
start_redis
http_port=$(free_port)
out="$state/ingest.callgrind"
policy=()
for ((i = 0; i < ${#extra[@]}; i++)); do
  [ "${extra[$i]}" = "--policy-file" ] && policy=(SMSGATE_POLICY="${extra[$((i + 1))]}")
done
env REDIS_URL="redis://127.0.0.1:$redis_port" SMSGATE_LISTEN="127.0.0.1:$http_port" \
  SMSGATE_NAMESPACE=instructions SMSGATE_TRUSTED_PROXIES=127.0.0.1 \
  SMSGATE_ADMIN_TOKEN="instructions-$RANDOM$RANDOM$RANDOM$RANDOM-token" \
  SMSGATE_DASHBOARD_DIR=/nonexistent RUST_LOG=warn "${policy[@]}" \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
  "$bin" ingest >"$state/ingest.log" 2>&1 &
ingest=$!
pids+=("$ingest")
wait_until curl -fsS "http://127.0.0.1:$http_port/healthz"
# One request outside the count: the first decision loads the script and warms the pools.
curl -fsS -o /dev/null -H 'Content-Type: application/json' -H 'X-Forwarded-For: 10.255.255.1' \
  -d '{"to": "+14155550100", "message": "warm"}' "http://127.0.0.1:$http_port/api/sms" || true
callgrind_control -i on "$ingest" >/dev/null
report=$(REDIS_URL="redis://127.0.0.1:$redis_port" bench --phases api --url "http://127.0.0.1:$http_port")
callgrind_control -d "$ingest" >/dev/null
echo "$report"
requests=$(requests_of api <<<"$report")
server_ir=$(dumped_ir "$out")
echo "server: $server_ir instructions over $requests requests = $((server_ir / requests)) Ir/request"
kill "$ingest" 2>/dev/null || true
fi
[ "$side" = server ] && exit 0

# Ir per decision of one Redis-only phase, with a redis-server of its own under callgrind.
per_decision() {
  local phase=$1 out="$state/redis-$1.callgrind"
  start_redis "$out"
  # The phase loads its script first; that one load is part of the count (negligible over
  # thousands of decisions).
  callgrind_control -i on "$redis_pid" >/dev/null
  local report; report=$(REDIS_URL="redis://127.0.0.1:$redis_port" bench --phases "$phase")
  callgrind_control -d "$redis_pid" >/dev/null
  echo "$report"
  local n; n=$(requests_of "$phase" <<<"$report")
  local ir; ir=$(dumped_ir "$out")
  echo "redis $phase: $ir instructions over $n decisions = $((ir / n)) Ir/decision"
  declare -g "ir_$phase=$((ir / n))"
}
echo "== redis: redis-server under callgrind, the decision script, then the baseline script"
per_decision script
per_decision baseline
python3 -c "print(f'redis Ir per decision, script/baseline: {$ir_script / $ir_baseline:.2f}')"
