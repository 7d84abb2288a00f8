# shellcheck shell=bash
# Sourced by scripts/serve and scripts/test: makes sure Redis and PostgreSQL are reachable.
# A reachable REDIS_URL / DATABASE_URL (or a server on the standard local port) is used as is;
# otherwise the Debian packages are installed when missing and a private server is started on a
# free port under .local/, and stopped again when the calling script exits.

SMSGATE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMSGATE_STATE=${SMSGATE_STATE:-$SMSGATE_ROOT/.local}
mkdir -p "$SMSGATE_STATE"
_smsgate_cleanup=()
_apt_updated=

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_command COMMAND DEBIAN_PACKAGE
ensure_command() {
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2 (for $1)"
  if [ -z "$_apt_updated" ]; then
    as_root apt-get update -qq
    _apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# ensure_prism: Stoplight Prism, which serves Twilio's published OpenAPI document to the delivery
# tests and refuses requests that break it. Installed from npm under .local/ once.
ensure_prism() {
  local dir="$SMSGATE_STATE/prism"
  if [ ! -x "$dir/node_modules/.bin/prism" ]; then
    ensure_command npm npm
    say "installing @stoplight/prism-cli (Twilio's API contract for the delivery tests)"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error @stoplight/prism-cli@5.16.0 >/dev/null
  fi
  export SMSGATE_PRISM="$dir/node_modules/.bin/prism"
  export SMSGATE_TWILIO_SPEC="${SMSGATE_TWILIO_SPEC:-$SMSGATE_ROOT/../shared/specs/twilio_api_v2010.json}"
  [ -f "$SMSGATE_TWILIO_SPEC" ] || { echo "Twilio's OpenAPI document is not at $SMSGATE_TWILIO_SPEC" >&2; return 1; }
}

# ensure_twilio_sdks: the official Twilio SDKs, `twilio` from PyPI (in a venv) and from npm (under
# an npm prefix), which smsgate/tests/twilio_compat.rs drives against smsgate's
# Twilio-compatible API. Installed under .local/ once, at pinned versions.
TWILIO_PYTHON_VERSION=9.13.0
TWILIO_NODE_VERSION=6.3.1
ensure_twilio_sdks() {
  local py="$SMSGATE_STATE/twilio-python" node="$SMSGATE_STATE/twilio-node"
  if ! "$py/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$TWILIO_PYTHON_VERSION')" 2>/dev/null; then
    ensure_command python3 python3
    if ! python3 -m venv "$py" 2>/dev/null; then
      # Debian's python3 leaves venv (ensurepip) to a package of its own.
      say "installing python3-venv (for the Python SDK's venv)"
      [ -n "$_apt_updated" ] || { as_root apt-get update -qq; _apt_updated=1; }
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv "$py"
    fi
    say "installing twilio $TWILIO_PYTHON_VERSION from PyPI (the Python SDK the Twilio-compatible API is tested with)"
    "$py/bin/pip" install --quiet --disable-pip-version-check "twilio==$TWILIO_PYTHON_VERSION"
  fi
  if [ ! -f "$node/node_modules/twilio/package.json" ] \
      || ! grep -q "\"version\": \"$TWILIO_NODE_VERSION\"" "$node/node_modules/twilio/package.json"; then
    ensure_command npm npm
    say "installing twilio@$TWILIO_NODE_VERSION from npm (the Node SDK the Twilio-compatible API is tested with)"
    npm install --prefix "$node" --no-audit --no-fund --loglevel=error "twilio@$TWILIO_NODE_VERSION" >/dev/null
  fi
  export SMSGATE_TWILIO_PYTHON="$py/bin/python"
  export SMSGATE_TWILIO_NODE_PATH="$node/node_modules"
}

# ensure_smsc: the npm `smpp` package (its server side) for the test SMSC that the smpp
# provider's tests run (dispatcher/tests/smsc). Installed from its lock file under .local/ once.
ensure_smsc() {
  local src="$SMSGATE_ROOT/dispatcher/tests/smsc" dir="$SMSGATE_STATE/smsc"
  if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" 2>/dev/null || [ ! -d "$dir/node_modules/smpp" ]; then
    ensure_command npm npm
    say "installing the npm smpp package (the test SMSC of the smpp provider's tests)"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
  export SMSGATE_SMSC_NODE_PATH="$dir/node_modules"
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( (RANDOM % 30000) + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

stop_services() {
  local i
  for (( i=${#_smsgate_cleanup[@]}-1; i>=0; i-- )); do
    eval "${_smsgate_cleanup[$i]}" >/dev/null 2>&1 || true
  done
  _smsgate_cleanup=()
}
trap stop_services EXIT
trap 'exit 130' INT TERM

redis_answers() { redis-cli -u "$1" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  ensure_command redis-server redis-server
  ensure_command redis-cli redis-tools
  if [ -n "${REDIS_URL:-}" ] && redis_answers "$REDIS_URL"; then
    say "using Redis at $REDIS_URL"; return 0
  fi
  if [ -z "${REDIS_URL:-}" ] && redis_answers redis://127.0.0.1:6379; then
    export REDIS_URL=redis://127.0.0.1:6379
    say "using Redis at $REDIS_URL"; return 0
  fi
  local port dir
  port=$(free_port)
  dir="$SMSGATE_STATE/redis"
  mkdir -p "$dir"
  # The shipped deployment's durability: append-only file, fsync every second.
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync everysec --save ""
  export REDIS_URL="redis://127.0.0.1:$port"
  _smsgate_cleanup+=("redis-cli -p $port shutdown nosave")
  for _ in $(seq 1 100); do redis_answers "$REDIS_URL" && break; sleep 0.1; done
  redis_answers "$REDIS_URL" || { echo "redis-server did not start; see $dir/redis.log" >&2; return 1; }
  say "started Redis at $REDIS_URL (data in $dir)"
}

postgres_answers() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Sets DATABASE_URL to a server where the postgres user may create databases; the database
# name is $1 (smsgate creates it on start).
ensure_postgres() {
  local dbname=${1:-smsgate}
  ensure_command psql postgresql-client
  if [ -n "${DATABASE_URL:-}" ] && postgres_answers "${DATABASE_URL%/*}/postgres"; then
    say "using PostgreSQL at ${DATABASE_URL%/*}"; return 0
  fi
  if [ -z "${DATABASE_URL:-}" ] && postgres_answers postgres://postgres@127.0.0.1:5432/postgres; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$dbname"
    say "using PostgreSQL at 127.0.0.1:5432"; return 0
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    ensure_command pg_ctlcluster postgresql
    # The package may start its own cluster; ours is separate, so leave that one alone.
  fi
  local bin port dir run_as=()
  bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
  port=$(free_port)
  dir="$SMSGATE_STATE/postgres"
  # PostgreSQL refuses to run as root: run it as the postgres account the package created.
  if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
  _smsgate_cleanup+=("${run_as[*]} $bin/pg_ctl -D $dir/data -m fast stop")
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$dbname"
  postgres_answers "postgres://postgres@127.0.0.1:$port/postgres" \
    || { echo "postgres did not start; see $dir/postgres.log" >&2; return 1; }
  say "started PostgreSQL at 127.0.0.1:$port (data in $dir/data)"
}

# Starts `smsgate serve` (the debug build) on a free port with the environment assignments
# given, and waits until it is ready; sets serve_port and serve_pid. Another socket (any
# outgoing connection takes an ephemeral port) can take free_port's port before the server binds
# it, so a server that could not listen is started again on another port.
serve_on_free_port() {
  local log=$1
  shift
  for _ in 1 2 3; do
    serve_port=$(free_port)
    env SMSGATE_LISTEN="127.0.0.1:$serve_port" "$@" "$CARGO_TARGET_DIR/debug/smsgate" serve \
      >"$log" 2>&1 &
    serve_pid=$!
    _smsgate_cleanup+=("kill $serve_pid")
    wait_for_http "http://127.0.0.1:$serve_port/readyz" "$serve_pid" && return 0
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    grep -q "cannot listen" "$log" || break
    say "port $serve_port was taken before smsgate serve bound it; starting again on another"
  done
  echo "smsgate serve did not become ready; see $log" >&2
  return 1
}

# Waits up to 30 s for `url` to answer; with a pid, no longer than that process lives.
wait_for_http() {
  local url=$1 pid=${2:-}
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "nothing answered at $url" >&2
  return 1
}
