#!/usr/bin/env bash
# Grafana dashboards (grafana/dashboards/*.json): one pass/fail for tests/run.sh.
#
#   1. the committed JSON is exactly what the mixin builds (grafana/mixin/build.sh with
#      Debian's jsonnet): no drift, no file the mixin does not make
#   2. grafana/tools/lint-dashboards.py: the dashboard conventions (datasource/cluster/
#      job/instance variables, title/description/unit/datasource/runbook link on every panel,
#      cluster+job+instance on every selector, [$__rate_interval], counters only in rate(), known
#      metric names), and --self-test: each injected mistake is caught
#   3. a real Prometheus (Debian package) on 127.0.0.1 with an empty scrape configuration and
#      a temporary TSDB parses every panel and variable query (Grafana variables replaced by
#      concrete values): HTTP 400 or any other non-200 answer fails; stopped by its pid
#   4. structure: @grafana/schema 12.3.0 + tsc 5.9.3 (pinned in grafana/tools/schema-check/
#      package-lock.json, installed with npm ci into a cache directory outside the tree):
#      `<dashboard JSON> satisfies Dashboard` must type-check (wrong types, unknown keys)
#   5. provisioning files: the dashboards provider and the datasource example are well formed
#   6. the "which container" join as shipped (grafana/tools/which-container-test.py): promtool
#      evaluates the overview's "CLOSE_WAIT: which container" query on namespaces with and
#      without sockdiag_netns_info: names where the info exists, no row lost or doubled
# Run: bash tests/checks/25-dashboards.sh (root on a fresh Debian: installs what it needs).
# SOCKDIAG_SCHEMA_CACHE overrides the npm cache directory (default ~/.cache/sockdiag-schema-check).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

need_apt prometheus prometheus || exit 1
need_apt promtool prometheus || exit 1
need_apt python3 python3 || exit 1
need_apt curl curl || exit 1
need_apt node nodejs || exit 1
need_apt npm npm || exit 1
need_apt jsonnet jsonnet || exit 1

DASHBOARDS=(grafana/dashboards/*.json)
check_begin

prometheus_parses() {
  local port i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' > "$TMP/prometheus.yml"
  prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
    --web.listen-address="127.0.0.1:$port" >"$TMP/prometheus.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready" \
    || { echo "Prometheus did not become ready:"; tail -20 "$TMP/prometheus.log"; return 1; }
  echo "$(prometheus --version 2>&1 | head -1) on 127.0.0.1:$port"
  python3 grafana/tools/lint-dashboards.py --prometheus "http://127.0.0.1:$port" "${DASHBOARDS[@]}"
}

schema_check() {
  local cache=${SOCKDIAG_SCHEMA_CACHE:-${HOME:-/root}/.cache/sockdiag-schema-check}
  local src=grafana/tools/schema-check
  mkdir -p "$cache" || return 1
  cp "$src/check.mjs" "$src/relax.ts" "$src/tsconfig.json" "$cache"/
  if ! cmp -s "$src/package-lock.json" "$cache/package-lock.json" || [ ! -d "$cache/node_modules/@grafana/schema" ]; then
    cp "$src/package.json" "$src/package-lock.json" "$cache"/
    echo "npm ci (@grafana/schema, typescript) in $cache"
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) >"$TMP/npm.log" 2>&1 \
      || { echo "npm ci failed:"; grep -v 'Unknown user config' "$TMP/npm.log" | tail -20; return 1; }
  fi
  node "$cache/check.mjs" "${DASHBOARDS[@]}"
}

provisioning() {
  python3 - <<'EOF'
import glob, os, re, sys
bad = 0
def need(cond, msg):
    global bad
    if not cond:
        print("FAIL", msg); bad = 1
prov = open("grafana/provisioning/dashboards/sockdiag.yml").read()
need(re.search(r"^apiVersion: 1$", prov, re.M), "dashboards provider: apiVersion 1")
need(re.search(r"^\s+type: file$", prov, re.M), "dashboards provider: type file")
need(re.search(r"^\s+path: /\S+", prov, re.M), "dashboards provider: options.path")
ds = open("grafana/provisioning/datasources/sockdiag-prometheus.yml").read()
need(re.search(r"^apiVersion: 1$", ds, re.M) and re.search(r"^\s+type: prometheus$", ds, re.M),
     "datasource example: apiVersion 1, type prometheus")
for f in glob.glob("grafana/provisioning/**/*", recursive=True):
    if os.path.isfile(f):
        need("\t" not in open(f).read(), f"{f}: tab in YAML")
sys.exit(bad)
EOF
}

step "dashboards match the mixin (jsonnet build)" mixin_matches dashboards
step "dashboard lint (lint-dashboards.py)" python3 grafana/tools/lint-dashboards.py "${DASHBOARDS[@]}"
step "dashboard linter self-test" python3 grafana/tools/lint-dashboards.py --self-test "${DASHBOARDS[@]}"
step "every query parsed by Prometheus" prometheus_parses
step "@grafana/schema structural check (tsc)" schema_check
step "provisioning files" provisioning
step "which-container join (promtool on the shipped query)" \
  python3 grafana/tools/which-container-test.py "$TMP/which-container" grafana/dashboards/sockdiag-overview.json

check_end 25-dashboards
