#!/usr/bin/env bash
# deploy/test.sh: CI check of everything under deploy/ plus docker-compose.yml and
# .env.example. Needs no Docker engine and no running smsgate.
#
# Installs what it lacks (as root, or through sudo):
#   - promtool: Debian package `prometheus` (apt-get update + install only when missing)
#   - nginx:    Debian package `nginx`, unpacked under .local/ (never installed as a service)
#   - amtool:   Debian package `prometheus-alertmanager`, unpacked under .local/ (likewise)
#   - PyYAML + jsonschema: PyPI, in a venv at .local/deploy-venv
#
# Checks: promtool check config / check rules / test rules, alert conventions and test
# coverage, `amtool check-config` on the Alertmanager config as its entrypoint renders it, the Compose file against the vendored Compose-spec schema and its wiring, the
# Grafana provisioning and dashboard (JSON, PromQL through promtool), that every smsgate_*
# metric used is listed in docs/metrics.md, `nginx -t` on the proxy config,
# `systemd-analyze verify` on the units, the Dockerfile's build commands, script syntax.
# Ends with `deploy: N passed, N failed, N skipped`; exits non-zero on any failure.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=deploy/tools/ensure-tools.sh
. "$ROOT/deploy/tools/ensure-tools.sh"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
skipped=0

ok() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
skip() { skipped=$((skipped + 1)); echo "skip - $*"; }

# check "what" command...: one check, its output shown only when it fails.
check() {
    local what="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        ok "$what"
    else
        fail "$what"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

# Run a deploycheck.py subcommand and count its ok/FAIL/skip lines.
pychecks() {
    local out rc=0
    out="$("$PY" deploy/tools/deploycheck.py "$@" 2>&1)" || rc=$?
    printf '%s\n' "$out"
    passed=$((passed + $(grep -c '^ok   - ' <<<"$out" || true)))
    failed=$((failed + $(grep -c '^FAIL - ' <<<"$out" || true)))
    skipped=$((skipped + $(grep -c '^skip - ' <<<"$out" || true)))
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL - ' <<<"$out"; then
        fail "deploycheck.py $* exited $rc"
    fi
}

# --------------------------------------------------------------------- tools
echo "# tools"
ensure_prometheus
promtool --version 2>&1 | head -1
ensure_nginx
ensure_amtool
ensure_venv

# --------------------------------------------------------------------- prometheus
echo "# prometheus"
# The compose entrypoint runs Prometheus on a directory holding prometheus.yml, alerts.yml
# and the admin token file `smsgate-admin-token`; stage the same layout, dummy token.
mkdir -p "$TMP/prometheus"
cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml "$TMP/prometheus/"
printf '%s' dummy-token >"$TMP/prometheus/smsgate-admin-token"
check "promtool check config deploy/prometheus/prometheus.yml (staged as in the container)" \
    promtool check config "$TMP/prometheus/prometheus.yml"
check "promtool check rules deploy/prometheus/alerts.yml" \
    promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" \
    promtool test rules deploy/prometheus/alerts_test.yml
pychecks alerts

# --------------------------------------------------------------------- alertmanager
echo "# alertmanager"
# Rendered by the container's own entrypoint, with a URL that exercises its escaping.
hook_url="https://alerts.example.com/hooks/a&b?c='d'\\e"
if [ -x "$AMTOOL_BIN" ]; then
    check "deploy/alertmanager/entrypoint.sh renders the config (webhook URL from the environment)" \
        env SMSGATE_ALERT_WEBHOOK_URL="$hook_url" \
        ALERTMANAGER_CONFIG_DIR="$TMP/alertmanager" sh deploy/alertmanager/entrypoint.sh --render-only
    check "amtool check-config deploy/alertmanager/alertmanager.yml (as rendered)" \
        "$AMTOOL_BIN" check-config "$TMP/alertmanager/alertmanager.yml"
    am_route() {
        "$AMTOOL_BIN" config routes test --config.file="$TMP/alertmanager/alertmanager.yml" \
            --verify.receivers=webhook severity=critical alertname=SmsgateDeliveryFailureRatioHigh &&
            "$AMTOOL_BIN" config routes test --config.file="$TMP/alertmanager/alertmanager.yml" \
                --verify.receivers=webhook severity=warning alertname=SmsgateDeliveryBacklogOld &&
            "$PY" - "$TMP/alertmanager/alertmanager.yml" "$hook_url" <<'PY'
import sys, yaml
url = yaml.safe_load(open(sys.argv[1]))["receivers"][0]["webhook_configs"][0]["url"]
sys.exit(0 if url == sys.argv[2] else f"rendered webhook url {url!r} != {sys.argv[2]!r}")
PY
    }
    check "amtool config routes test: delivery alerts reach the webhook, its URL exactly as given" am_route
else
    skip "amtool check-config (no amtool binary)"
fi

# --------------------------------------------------------------------- compose
echo "# compose"
pychecks compose

# --------------------------------------------------------------------- grafana
echo "# grafana"
pychecks grafana
"$PY" deploy/tools/deploycheck.py dashboard-rules "$TMP/dashboard-rules.yml"
check "every dashboard query is valid PromQL (promtool check rules)" \
    promtool check rules "$TMP/dashboard-rules.yml"

# --------------------------------------------------------------------- metric names
echo "# metric names (docs/metrics.md)"
pychecks metric-names

# --------------------------------------------------------------------- proxy
echo "# proxy"
if [ -x "$NGINX_BIN" ]; then
    mkdir -p "$TMP/nginx"
    check "nginx -t deploy/proxy/nginx.conf" \
        "$NGINX_BIN" -t -q -p "$TMP/nginx/" -c "$ROOT/deploy/proxy/nginx.conf" -e stderr
else
    skip "nginx -t deploy/proxy/nginx.conf (no nginx binary)"
fi

# --------------------------------------------------------------------- systemd
echo "# systemd"
units=(smsgate-serve.service smsgate-ingest@.service smsgate-projector.service smsgate-archiver.service smsgate.target)
unit_keys() {
    local f missing=0
    for f in "${units[@]}"; do
        [ -f "deploy/systemd/$f" ] || { echo "deploy/systemd/$f missing"; missing=1; continue; }
        case "$f" in *.service)
            for key in 'EnvironmentFile=/etc/smsgate/smsgate.env' 'DynamicUser=yes' 'ProtectSystem=strict' \
                'NoNewPrivileges=yes' 'Restart=on-failure' 'ExecStart=/usr/local/bin/smsgate '; do
                grep -q "^$key" "deploy/systemd/$f" || { echo "$f lacks $key"; missing=1; }
            done
            ;;
        esac
    done
    [ -f deploy/systemd/smsgate.env.example ] || { echo "deploy/systemd/smsgate.env.example missing"; missing=1; }
    return "$missing"
}
check "systemd units: EnvironmentFile, DynamicUser, ProtectSystem=strict, NoNewPrivileges, Restart=on-failure" unit_keys
if command -v systemd-analyze >/dev/null; then
    systemd_verify() {
        local d="$TMP/systemd" out
        mkdir -p "$d"
        cp deploy/systemd/*.service deploy/systemd/*.target "$d/"
        # The binary is not installed here; every other complaint is a failure.
        out="$(cd "$d" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
            ./smsgate-serve.service ./smsgate-ingest@3001.service ./smsgate-projector.service \
            ./smsgate-archiver.service ./smsgate.target 2>&1 |
            grep -v 'Command /usr/local/bin/smsgate is not executable' || true)"
        [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
    }
    check "systemd-analyze verify deploy/systemd units" systemd_verify
else
    skip "systemd-analyze verify (systemd-analyze not installed)"
fi

# --------------------------------------------------------------------- Dockerfile
echo "# Dockerfile"
dockerfile_checks() {
    local f=deploy/Dockerfile bad=0
    local want=(
        'npm ci'
        'npm run build'
        'cargo build --release --locked -p smsgate'
        'ENTRYPOINT ["smsgate"]'
        'CMD ["serve"]'
        'SMSGATE_LISTEN=0.0.0.0:3000'
        'SMSGATE_DASHBOARD_DIR=/usr/share/smsgate/dashboard'
        'HEALTHCHECK'
        '/healthz'
        'ca-certificates'
        'curl'
    )
    for w in "${want[@]}"; do
        grep -qF -- "$w" "$f" || { echo "$f lacks: $w"; bad=1; }
    done
    [ "$(grep -c '^FROM ' "$f")" -ge 3 ] || { echo "$f is not multi-stage (node, rust, runtime)"; bad=1; }
    grep -Eq '^USER +[^0r]' "$f" || { echo "$f does not switch to a non-root USER"; bad=1; }
    grep -Eq '^(FROM|ARG RUNTIME_IMAGE=) *debian:[a-z]+-slim' "$f" || { echo "$f runtime is not a slim Debian image"; bad=1; }
    for w in '**/target' '**/node_modules' '**/dist' '.git'; do
        grep -qxF -- "$w" deploy/Dockerfile.dockerignore || { echo "deploy/Dockerfile.dockerignore lacks $w"; bad=1; }
    done
    return "$bad"
}
check "Dockerfile: multi-stage, CI's build commands, non-root, healthcheck, ignore file" dockerfile_checks
# CI's entry point and the script it runs: say so when they stop building the way the image does.
ci_files=()
for f in .ci/run scripts/test; do [ -f "$f" ] && ci_files+=("$f"); done
if [ "${#ci_files[@]}" -gt 0 ]; then
    for re in 'cargo build (--release )?--locked -p smsgate' 'npm (--prefix dashboard )?ci' 'npm (--prefix dashboard )?run build'; do
        if ! grep -Eq -- "$re" "${ci_files[@]}"; then
            echo "note: ${ci_files[*]} do not run /$re/ (deploy/Dockerfile builds with it)"
        fi
    done
    if ! grep -Eq -- 'cargo build --release --locked -p smsgate' "${ci_files[@]}"; then
        echo "note: CI builds smsgate without --release; deploy/Dockerfile builds with --release"
    fi
fi

# --------------------------------------------------------------------- scripts
echo "# scripts"
check "bash -n deploy/test.sh deploy/test-live.sh" bash -c 'bash -n deploy/test.sh && bash -n deploy/test-live.sh'
if command -v shellcheck >/dev/null; then
    check "shellcheck deploy/*.sh" shellcheck deploy/test.sh deploy/test-live.sh
fi

echo
echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
