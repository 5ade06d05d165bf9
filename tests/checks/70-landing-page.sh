#!/usr/bin/env bash
# The landing page `/` in a real browser: a live exporter, leaking processes (a UDP
# receiver that drops among them) and the browser all run inside a private network
# namespace this check creates (loopback only); headless Chromium (Debian's, driven by
# playwright-core from npm, pinned in tests/browser/package-lock.json) loads the page and
# tests/browser/landing.mjs asserts it. Screenshots are kept in target/artifacts/.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

if [ "$(id -u)" != 0 ]; then
  echo "70-landing-page.sh needs root: it creates a network namespace" >&2
  exit 1
fi
need_apt ip iproute2 || exit 1
need_apt python3 python3 || exit 1
need_apt chromium chromium fonts-dejavu-core || exit 1
need_apt node nodejs || exit 1
need_apt npm npm || exit 1

check_begin
NS="sockdiag-page-$$"
ARTIFACTS="$PWD/target/artifacts"
# Whatever still runs in the namespace (a process a failed step left) is stopped by pid
# before the namespace goes.
cleanup() {
  check_cleanup
  local pids
  pids=$(ip netns pids "$NS" 2>/dev/null)
  [ -n "$pids" ] && kill $pids 2>/dev/null
  ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT
mkdir -p "$ARTIFACTS"

cargo build --locked --quiet --bin sockdiag_exporter || exit 1
(cd tests/browser && npm ci --no-audit --no-fund --ignore-scripts --silent) || exit 1
ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up || exit 1
# Backgrounded as plain commands (not through a function, which would fork a subshell):
# `ip netns exec` execs its command, so $! is the process itself, stopped by that pid.
start() {
  local out=$TMP/$2.out
  ip netns exec "$NS" python3 tests/browser/scene.py "$@" >"$out" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -qs ready "$out" && return 0; sleep 0.1; done
  echo "scene $* did not get ready" >&2
  return 1
}

start hold leaky-app 8080 || exit 1
LEAK_PID=${PIDS[-1]}
start backlog cpp-server 8081 4 || exit 1
start churn token-api 6601 20 || exit 1
start unix php-fpm @sockdiag-page-fpm 4 || exit 1
start udp udp-sink 8125 4096 1000 || exit 1
UDP_PID=${PIDS[-1]}
ip netns exec "$NS" target/debug/sockdiag_exporter --web.listen-address=127.0.0.1:10120 --namespaces=own \
  --poll.interval=3s --log.level=warn 2>"$TMP/exporter.log" &
PIDS+=($!)

step "landing page in headless chromium" \
  ip netns exec "$NS" env BASE=http://127.0.0.1:10120 GROW_PID="$LEAK_PID" UDP_PID="$UDP_PID" OUT="$ARTIFACTS" \
  node tests/browser/landing.mjs
step "screenshots kept" test -s "$ARTIFACTS/landing-page-desktop.png" -a -s "$ARTIFACTS/landing-page-phone.png"
if [ ${#failed[@]} -gt 0 ]; then
  echo "exporter log:"; cat "$TMP/exporter.log"
fi
check_end "70-landing-page"
