#!/usr/bin/env bash
# 30 s variant of the churn soak (benches/soak.sh) on the debug build: 2,000 TCP
# connections/s with CLOSE_WAIT and TIME_WAIT and 50 processes/s whose pids are reused at
# once under alternating names, the exporter polling every 100 ms, all in private network
# and PID namespaces. Fails on any poll error, any wrong owner name in any scrape, a count
# per family and state or per process that differs from `ss` once the load has stopped and
# TIME_WAIT has expired, or a load that did not run. Asserts no timing, RSS or fd figure:
# the churn targets of issue 27 are judged and printed (--no-targets), never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
check_begin

started=$(date +%s)
step "soak.py checks can fail (wrong name, miscount, ss parsing)" python3 benches/soak.py selftest
build() { cargo build --locked -q --bin sockdiag_exporter; }
step "build the debug binary" build
step "30 s churn soak: no poll error, no wrong name, counts equal ss" \
  timeout 300 benches/soak.sh --duration 30 --no-targets \
  --binary target/debug/sockdiag_exporter --out "$TMP/soak"
echo "churn soak: $(($(date +%s) - started)) s"
check_end "62-churn-soak"
