#!/usr/bin/env bash
# A local Redis Cluster on loopback ports, for the cluster tests and the scaling benchmark.
#
#   scripts/cluster.sh start DIR [PRIMARIES] [REPLICAS_PER_PRIMARY]   (defaults: 3 primaries, 1 replica each)
#   scripts/cluster.sh stop DIR
#   scripts/cluster.sh url DIR
#
# `start` installs redis-server / redis-tools when missing, starts PRIMARIES × (1 + REPLICAS)
# redis-server processes on free ports with their data under DIR/<port>/ (the shipped
# durability: AOF, fsync every second), forms the cluster, waits until every node reports
# `cluster_state:ok`, writes the URL to DIR/url and prints it on stdout as the only line:
#
#   redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=…   (every node, primaries first)
#
# Three or more primaries are joined with `redis-cli --cluster create`; one or two (which that
# command refuses) with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE. Each node's config is
# DIR/<port>/redis.conf, so a test that kills a node can restart it with `redis-server
# DIR/<port>/redis.conf` and it rejoins as a replica. `stop` shuts every node down and
# removes DIR. Progress goes to stderr.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_redis_binaries() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  say "installing redis-server and redis-tools"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools >/dev/null
}

# A free port whose cluster bus port (port + 10000) is free too; both below the ephemeral
# range (32768+), where an outgoing connection could take the port between check and bind.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$(( (RANDOM % 12000) + 10000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
      && ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null \
      && ! grep -qx "$port" "$1/ports" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

node_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

start() {
  local dir=$1 primaries=${2:-3} replicas=${3:-1}
  ensure_redis_binaries
  if [ -f "$dir/ports" ]; then
    echo "$dir already holds a cluster; run: $0 stop $dir" >&2
    return 1
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  : >"$dir/ports"
  local total=$(( primaries * (1 + replicas) )) ports=() port i
  for (( i = 0; i < total; i++ )); do
    port=$(free_port "$dir")
    echo "$port" >>"$dir/ports"
    ports+=("$port")
    mkdir -p "$dir/$port"
    # cluster-node-timeout 2 s: a dead primary is failed over in about 3 s (default 15 s).
    cat >"$dir/$port/redis.conf" <<EOF
port $port
bind 127.0.0.1
dir $dir/$port
daemonize yes
pidfile $dir/$port/redis.pid
logfile $dir/$port/redis.log
cluster-enabled yes
cluster-config-file $dir/$port/nodes.conf
cluster-node-timeout 2000
# A lone node never learns its own address from a peer; CLUSTER SLOTS would name it "".
cluster-announce-ip 127.0.0.1
appendonly yes
appendfsync everysec
save ""
EOF
    redis-server "$dir/$port/redis.conf"
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG \
      || { echo "redis-server on $port did not start:" >&2; tail -n 5 "$dir/$port/redis.log" >&2; return 1; }
  done

  if (( primaries >= 3 )); then
    local hosts=()
    for port in "${ports[@]}"; do hosts+=("127.0.0.1:$port"); done
    # Primaries are the first PRIMARIES hosts, replicas the rest.
    redis-cli --cluster create "${hosts[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 \
      || { cat "$dir/create.log" >&2; return 1; }
  else
    local per=$(( 16384 / primaries )) first last
    for (( i = 0; i < primaries; i++ )); do
      first=$(( i * per ))
      last=$(( i == primaries - 1 ? 16383 : (i + 1) * per - 1 ))
      redis-cli -p "${ports[$i]}" cluster addslotsrange "$first" "$last" >/dev/null
    done
    for port in "${ports[@]:1}"; do
      redis-cli -p "$port" cluster meet 127.0.0.1 "${ports[0]}" >/dev/null
    done
    for (( i = primaries; i < total; i++ )); do
      local primary=${ports[$(( (i - primaries) % primaries ))]} id
      id=$(redis-cli -p "$primary" cluster myid)
      # REPLICATE needs the primary to be known to the replica first.
      for _ in $(seq 1 100); do
        redis-cli -p "${ports[$i]}" cluster nodes | grep -q "^$id" && break
        sleep 0.1
      done
      redis-cli -p "${ports[$i]}" cluster replicate "$id" >/dev/null
    done
  fi

  for port in "${ports[@]}"; do
    for _ in $(seq 1 300); do node_ok "$port" && break; sleep 0.1; done
    node_ok "$port" || { echo "node $port never reached cluster_state:ok" >&2; return 1; }
  done
  # Replicas must have synced before a failover test can promote them.
  for port in "${ports[@]}"; do
    if redis-cli -p "$port" info replication | grep -q '^role:slave'; then
      for _ in $(seq 1 300); do
        redis-cli -p "$port" info replication | grep -q '^master_link_status:up' && break
        sleep 0.1
      done
    fi
  done

  local url="redis-cluster://127.0.0.1:${ports[0]}" sep='?'
  for port in "${ports[@]:1}"; do url+="${sep}node=127.0.0.1:$port"; sep='&'; done
  echo "$url" >"$dir/url"
  say "Redis Cluster: $primaries primaries, $replicas replica(s) each, data in $dir"
  echo "$url"
}

stop() {
  local dir=$1 port pid
  [ -f "$dir/ports" ] || { rm -rf "$dir"; return 0; }
  while read -r port; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done <"$dir/ports"
  # Whatever did not answer SHUTDOWN (e.g. a node a test killed and restarted) by its pidfile.
  while read -r port; do
    pid=$(cat "$dir/$port/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done <"$dir/ports"
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  url) cat "$2/url" ;;
  *) echo "usage: $0 start DIR [PRIMARIES] [REPLICAS] | stop DIR | url DIR" >&2; exit 2 ;;
esac
