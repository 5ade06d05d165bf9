#!/usr/bin/env bash
# Prometheus rules and Alertmanager example (grafana/): one pass/fail for tests/run.sh.
#
#   0. the committed rule files are exactly what the mixin builds (grafana/mixin/build.sh with
#      Debian's jsonnet): no drift; the mixin's jsonnet is as jsonnetfmt formats it
#   1. promtool check rules grafana/rules/*.yml
#   2. promtool test rules grafana/tests/*.test.yml (every alert fires with labels and
#      annotations asserted, and stays silent on steady churn and deploy blips)
#   3. grafana/tools/lint-rules.py: the rule conventions (names, severity, summary/description/
#      runbook_url, runbook sections), metric names against the contract, test coverage
#   4. the test overlay (grafana/tools/rules-overlay.py --scale 60, and --for 0s): the
#      rewritten copy passes promtool check rules, keeps no minute-long duration, and passes
#      grafana/tests/overlay/*.test.yml at a 1s interval
#   5. amtool check-config grafana/alertmanager/alertmanager.yml
#   6. amtool config routes test --verify.receivers=...: every alert of the rule files reaches
#      the receiver of its severity (critical -> pager, warning -> ticket, info -> null)
#   7. inhibition on a real Alertmanager on 127.0.0.1 (receivers stripped of integrations, so
#      nothing is sent anywhere): warnings of a target are inhibited by its criticals only
# Run: bash tests/checks/20-rules.sh (root on a fresh Debian: installs what it needs).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

need_apt promtool prometheus || exit 1
need_apt amtool prometheus-alertmanager || exit 1
need_apt prometheus-alertmanager prometheus-alertmanager || exit 1
need_apt python3 python3 || exit 1
need_apt curl curl || exit 1
need_apt jsonnet jsonnet || exit 1
if ! python3 -c 'import yaml' 2>/dev/null; then  # PyYAML for lint-rules.py: Debian's, else pip
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null
  python3 -c 'import yaml' 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check pyyaml >/dev/null
  python3 -c 'import yaml' || { echo "FAIL: PyYAML is not importable by $(command -v python3)"; exit 1; }
fi

RULES=(grafana/rules/*.yml)
AM=grafana/alertmanager/alertmanager.yml
check_begin

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # URL
  local i
  for i in $(seq 100); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "not ready after 10 s: $1"; return 1
}

overlay() {
  local out=$TMP/overlay leftover
  python3 grafana/tools/rules-overlay.py --scale 60 --out "$out" "${RULES[@]}" 2>"$TMP/overlay.log" \
    || { cat "$TMP/overlay.log"; return 1; }
  tail -1 "$TMP/overlay.log"
  promtool check rules "$out"/*.yml || return 1
  # Nothing a minute or longer may be left in the rewritten rules (comments aside).
  leftover=$(grep -hvE '^\s*#' "$out"/*.yml | grep -nE '\[[0-9]+[mhdwy]|offset [0-9]+[mhdwy]|^\s*(for|interval): *[0-9]+[mhdwy]')
  if [ -n "$leftover" ]; then echo "durations left unscaled:"; echo "$leftover"; return 1; fi
  cp grafana/tests/overlay/*.test.yml "$out"/
  promtool test rules "$out"/*.test.yml || return 1
  # --for 0s: every alert fires on its first true evaluation.
  python3 grafana/tools/rules-overlay.py --scale 60 --for 0s --out "$TMP/overlay0" "${RULES[@]}" 2>/dev/null || return 1
  promtool check rules "$TMP"/overlay0/*.yml >/dev/null || return 1
  if grep -hE '^\s*for:' "$TMP"/overlay0/*.yml | grep -vqE 'for: 0s$'; then
    echo "--for 0s left another for:"; return 1
  fi
}

jsonnetfmt_clean() {
  local f bad=0
  for f in $(find grafana/mixin grafana/tests -name '*.jsonnet' -o -name '*.libsonnet' | sort); do
    jsonnetfmt --test "$f" || { echo "not formatted: $f (run: jsonnetfmt -i $f)"; bad=1; }
  done
  return $bad
}

routes() {
  local alert severity receiver bad=0
  declare -A want=([critical]=pager [warning]=ticket [info]=null)
  while read -r alert severity; do
    receiver=${want[$severity]:-}
    if [ -z "$receiver" ]; then echo "FAIL $alert: no expected receiver for severity $severity"; bad=1; continue; fi
    if amtool config routes test --config.file="$AM" --verify.receivers="$receiver" \
         alertname="$alert" severity="$severity" job=sockdiag instance=host-1:10120 >/dev/null 2>&1; then
      echo "ok   $alert severity=$severity -> $receiver"
    else
      echo "FAIL $alert severity=$severity does not route to $receiver:"
      amtool config routes test --config.file="$AM" alertname="$alert" severity="$severity" 2>/dev/null
      bad=1
    fi
  done < <(python3 grafana/tools/lint-rules.py --severities)
  # Another team's alerts fall through to the root receiver; --verify.receivers does fail.
  amtool config routes test --config.file="$AM" --verify.receivers=ticket alertname=NodeDown severity=critical >/dev/null 2>&1 \
    || { echo "FAIL a non-sockdiag critical alert should reach the root receiver (ticket)"; bad=1; }
  if amtool config routes test --config.file="$AM" --verify.receivers=ticket \
       alertname=SockdiagCloseWaitGrowing severity=critical >/dev/null 2>&1; then
    echo "FAIL amtool --verify.receivers accepted a wrong receiver: the check is not checking"; bad=1
  fi
  return $bad
}

inhibition() {
  local cfg=$TMP/am-inhibition.yml port
  # The shipped config, with every receiver reduced to its name: no integration, no traffic.
  sed '/^receivers:/,$d' "$AM" > "$cfg"
  { echo "receivers:"; sed -n '/^receivers:/,$p' "$AM" | grep -E '^  - name: '; } >> "$cfg"
  amtool check-config "$cfg" >/dev/null || { amtool check-config "$cfg"; return 1; }
  port=$(free_port)
  prometheus-alertmanager --config.file="$cfg" --storage.path="$TMP/am-data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$TMP/am.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/-/ready" || { cat "$TMP/am.log"; return 1; }
  python3 grafana/tools/am-inhibition-test.py "http://127.0.0.1:$port"
}

step "rules match the mixin (jsonnet build)" mixin_matches rules
step "mixin jsonnet formatted (jsonnetfmt --test)" jsonnetfmt_clean
step "promtool check rules" promtool check rules "${RULES[@]}"
step "promtool test rules" promtool test rules grafana/tests/*.test.yml
step "rule conventions and test coverage (lint-rules.py)" python3 grafana/tools/lint-rules.py
step "test overlay (rules-overlay.py)" overlay
step "amtool check-config" amtool check-config "$AM"
step "amtool config routes test per alert" routes
step "Alertmanager inhibition (live, 127.0.0.1)" inhibition

check_end 20-rules
