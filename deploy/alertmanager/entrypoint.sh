#!/bin/sh
# Entrypoint of the compose service `alertmanager`: renders alertmanager.yml with the webhook
# URL from SMSGATE_ALERT_WEBHOOK_URL (Alertmanager cannot read variables in its config) into
# $ALERTMANAGER_CONFIG_DIR/alertmanager.yml, then starts Alertmanager on it with the given
# arguments. `entrypoint.sh --render-only` stops after rendering (deploy/test.sh checks the
# rendered file with `amtool check-config`).
set -eu

: "${SMSGATE_ALERT_WEBHOOK_URL:?set SMSGATE_ALERT_WEBHOOK_URL (where alerts are POSTed)}"
here="$(cd "$(dirname "$0")" && pwd)"
out="${ALERTMANAGER_CONFIG_DIR:-/alertmanager/config}"
mkdir -p "$out"
# A literal replacement (index/substr), so the URL's & and \ mean nothing to it, unlike in sed or
# gsub; the value sits in a single-quoted YAML scalar, where only ' needs escaping (as '').
awk -v token='@SMSGATE_ALERT_WEBHOOK_URL@' -v q="'" '{
    url = ENVIRON["SMSGATE_ALERT_WEBHOOK_URL"]
    gsub(q, q q, url)
    i = index($0, token)
    if (i) $0 = substr($0, 1, i - 1) url substr($0, i + length(token))
    print
}' "$here/alertmanager.yml" >"$out/alertmanager.yml"

if [ "${1:-}" = "--render-only" ]; then
    exit 0
fi
exec /bin/alertmanager --config.file="$out/alertmanager.yml" "$@"
