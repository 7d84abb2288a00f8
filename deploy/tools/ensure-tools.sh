# shellcheck shell=bash
# Sourced by deploy/test.sh and deploy/test-live.sh: installs the tools they need, only
# when missing. Expects ROOT (the repository) to be set.
#   ensure_prometheus  promtool + prometheus from the Debian package `prometheus`
#   ensure_venv        .local/deploy-venv with PyYAML and jsonschema (PyPI); sets PY
#   ensure_nginx       an nginx binary (PATH, or the Debian package unpacked under
#                      .local/nginx, never installed as a running service); sets NGINX_BIN
#   ensure_amtool      amtool (PATH, or the Debian package prometheus-alertmanager unpacked
#                      under .local/alertmanager, never installed as a service); sets AMTOOL_BIN

LOCAL="$ROOT/.local"
VENV="$LOCAL/deploy-venv"
PY="$VENV/bin/python"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "need root (or sudo) for: $*" >&2
        return 1
    fi
}

_apt_updated=0
apt_update_once() {
    if [ "$_apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        _apt_updated=1
    fi
}

apt_install() {
    apt_update_once
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_prometheus() {
    if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        echo "promtool/prometheus missing: installing Debian package prometheus"
        apt_install prometheus
    fi
}

ensure_venv() {
    if "$PY" -c 'import yaml, jsonschema' 2>/dev/null; then
        return 0
    fi
    echo "creating .local/deploy-venv with PyYAML and jsonschema"
    rm -rf "$VENV"
    mkdir -p "$LOCAL"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check pyyaml jsonschema
}

ensure_nginx() {
    NGINX_BIN="$(command -v nginx || true)"
    if [ -n "$NGINX_BIN" ]; then
        return 0
    fi
    NGINX_BIN="$LOCAL/nginx/root/usr/sbin/nginx"
    if [ -x "$NGINX_BIN" ]; then
        return 0
    fi
    # Unpacked, not installed: installing the package would start an nginx server.
    echo "nginx missing: unpacking Debian package nginx into .local/nginx"
    mkdir -p "$LOCAL/nginx"
    (
        cd "$LOCAL/nginx"
        rm -f nginx_*.deb
        if ! apt-get download nginx >/dev/null 2>&1; then
            apt_update_once
            apt-get download nginx >/dev/null 2>&1
        fi
        dpkg-deb -x nginx_*.deb root
    ) || echo "could not fetch the nginx package"
}

ensure_amtool() {
    AMTOOL_BIN="$(command -v amtool || true)"
    if [ -n "$AMTOOL_BIN" ]; then
        return 0
    fi
    AMTOOL_BIN="$LOCAL/alertmanager/root/usr/bin/amtool"
    if [ -x "$AMTOOL_BIN" ]; then
        return 0
    fi
    # Unpacked, not installed: installing the package would start an Alertmanager.
    echo "amtool missing: unpacking Debian package prometheus-alertmanager into .local/alertmanager"
    mkdir -p "$LOCAL/alertmanager"
    (
        cd "$LOCAL/alertmanager"
        rm -f prometheus-alertmanager_*.deb
        if ! apt-get download prometheus-alertmanager >/dev/null 2>&1; then
            apt_update_once
            apt-get download prometheus-alertmanager >/dev/null 2>&1
        fi
        dpkg-deb -x prometheus-alertmanager_*.deb root
    ) || echo "could not fetch the prometheus-alertmanager package"
}
