#!/usr/bin/env bash
# The figures of deploy/SCALING.md, in one sitting, with the release build:
#   1. `smsgate bench --mode script` (EVALSHA of the decision script straight at Redis) against
#      one plain Redis, then Redis Clusters of 1, 2 and 3 primaries (no replicas) and of
#      3 primaries + 3 replicas, all with 16 partitions;
#   2. `smsgate bench` (API mode) against 1 and then 2 `smsgate ingest` processes on the
#      3-primary cluster.
# Every server runs on this machine, next to the load generator. Needs a release build
# (`cargo build --release -p smsgate`; SMSGATE_BIN names another binary). DURATION,
# CONNECTIONS, KEYS override the defaults.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/smsgate-target}
bin=${SMSGATE_BIN:-$target/release/smsgate}
[ -x "$bin" ] || { echo "build first: cargo build --release -p smsgate" >&2; exit 1; }
duration=${DURATION:-10} connections=${CONNECTIONS:-64} keys=${KEYS:-10000}
state=$(mktemp -d /tmp/smsgate-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for c in "$state"/c*; do [ -d "$c" ] && "$root/scripts/cluster.sh" stop "$c"; done
  [ -f "$state/redis.port" ] && redis-cli -p "$(cat "$state/redis.port")" shutdown nosave >/dev/null 2>&1
  rm -rf "$state"
}
trap cleanup EXIT

bench() {
  /usr/bin/time -f "cpu: load generator %U s user + %S s system" \
    "$bin" bench --connections "$connections" --duration "$duration" --keys "$keys" --partitions 16 "$@"
}

# CPU seconds (user + system) the redis-server processes of DIR have used so far.
redis_cpu() {
  local total=0 pid ticks
  for pid in $(cat "$1"/*/redis.pid "$1"/redis.pid 2>/dev/null); do
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$(( total + ticks ))
  done
  echo "$total"
}

# `measure DIR COMMAND…`: runs the command and prints the CPU its Redis servers used meanwhile.
measure() {
  local dir=$1 before after
  shift
  before=$(redis_cpu "$dir")
  "$@"
  after=$(redis_cpu "$dir")
  awk -v t=$(( after - before )) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "cpu: redis-server(s) %.1f s\n", t / hz }' 
}

echo "## machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo), $(redis-server --version | cut -d' ' -f3)"

port=$(( (RANDOM % 10000) + 22000 ))
echo "$port" >"$state/redis.port"
mkdir -p "$state/redis"
redis-server --port "$port" --bind 127.0.0.1 --dir "$state/redis" --daemonize yes \
  --appendonly yes --appendfsync everysec --save "" --logfile "$state/redis/redis.log" \
  --pidfile "$state/redis/redis.pid"
sleep 0.5
echo "## script phase, one Redis (not a cluster)"
REDIS_URL="redis://127.0.0.1:$port" measure "$state/redis" bench --mode script
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
rm -f "$state/redis.port"

for shape in "1 0" "2 0" "3 0" "3 1"; do
  set -- $shape
  dir="$state/c$1-$2"
  url=$("$root/scripts/cluster.sh" start "$dir" "$1" "$2")
  echo "## script phase, Redis Cluster: $1 primaries, $2 replica(s) each"
  REDIS_URL="$url" measure "$dir" bench --mode script
  if [ "$shape" = "3 0" ]; then
    for ingest in 1 2; do
      urls=()
      for (( i = 0; i < ingest; i++ )); do
        p=$(( (RANDOM % 10000) + 22000 ))
        REDIS_URL="$url" SMSGATE_PARTITIONS=16 SMSGATE_LISTEN="127.0.0.1:$p" \
          SMSGATE_NAMESPACE="bench-api-$$-$ingest" SMSGATE_DASHBOARD_DIR=/nonexistent RUST_LOG=warn \
          "$bin" ingest >"$state/ingest-$i.log" 2>&1 &
        pids+=($!)
        urls+=("http://127.0.0.1:$p")
      done
      for u in "${urls[@]}"; do
        for _ in $(seq 1 100); do curl -fsS -o /dev/null "$u/readyz" 2>/dev/null && break; sleep 0.1; done
      done
      echo "## API mode, $ingest ingest process(es), Redis Cluster: 3 primaries"
      REDIS_URL="$url" measure "$dir" bench --url "$(IFS=,; echo "${urls[*]}")"
      ticks=0
      for pid in "${pids[@]}"; do ticks=$(( ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat") )); done
      awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "cpu: ingest process(es) %.1f s\n", t / hz }'
      for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
      pids=()
    done
  fi
  "$root/scripts/cluster.sh" stop "$dir"
done
