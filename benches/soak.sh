#!/usr/bin/env bash
# Churn soak (issue 17): TCP connection churn, CLOSE_WAIT and TIME_WAIT, and processes that
# own a socket and exit with their pids reused at once, against an exporter polling every
# 100 ms; everything in a private network, PID and mount namespace (loopback only). Records
# the exporter's RSS, fds and poll figures over time, checks every scrape for wrong owner
# names, and once the load stops and TIME_WAIT has expired, compares the counts per state
# and per process with `ss`. See docs/reliability.md ("Churn soak") for the last run.
#
#   benches/soak.sh                      10 minutes, release build, targets checked
#   benches/soak.sh --duration 30 --no-targets --binary target/debug/sockdiag_exporter
#                                        the CI variant (tests/checks/62-churn-soak.sh)
#
# Options: --duration SECONDS (600), --rate CONNECTIONS_PER_S (2000), --procs
# PROCESSES_PER_S (50), --poll MS (100), --sample SECONDS (5), --out DIR (a new temp dir),
# --binary PATH (default: build and use target/release/sockdiag_exporter), --no-targets
# (do not fail on RSS/fd growth: a run shorter than 2 minutes has no minute-1 baseline),
# --pid-reuse lifo|fifo (lifo: the pid reaped last is the next one forked, often within
# the same clock tick; fifo: the pid reaped longest ago, about 150 ms later),
# --malloc-stats (glibc heap totals of the exporter at minute 1, the end of the load and
# once settled, through gdb: each pauses the exporter for about a second).
# --held N (hold N more ESTABLISHED sockets throughout, spread over processes of at most
# the fds one may have: the bounded-poll test is --rate 20000 --held 200000),
# --report FILE (write the targets table into FILE's generated block: docs/reliability.md).
# After the load: a steady phase at the churn phase's socket count (ESTABLISHED filler, no
# churn) for the "poll CPU under churn" target. The churn targets of issue 27 (readlinks per
# poll, full passes, poll CPU under churn, longest poll, RSS at minute 30 against minute 2
# when --duration >= 1800) are judged in DIR/summary.json ("targets") and DIR/targets.md.
# Writes DIR/series.csv, DIR/summary.json, DIR/targets.md, DIR/exporter.log; exits 1 if a
# check fails (or, without --no-targets, a target is missed).
# Needs root (namespaces). About 1.5 minutes more than --duration: TIME_WAIT has to
# expire, then the steady phase (5 to 30 s, a quarter of --duration).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

if [ "$(id -u)" != 0 ]; then
  echo "benches/soak.sh needs root (network and PID namespaces)" >&2
  exit 1
fi
need_apt ss iproute2
need_apt ip iproute2
need_apt unshare util-linux
need_apt python3 python3
for arg in "$@"; do [ "$arg" = --malloc-stats ] && need_apt gdb gdb; done

export SOAK_COMMAND="benches/soak.sh${*:+ $*}"
duration=600 rate=2000 procs=50 poll=100 sample=5 out="" binary="" targets=1 reuse=lifo heap=0 held=0 report=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --poll) poll=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --no-targets) targets=0; shift ;;
    --pid-reuse) reuse=$2; shift 2 ;;
    --malloc-stats) heap=1; shift ;;
    --held) held=$2; shift 2 ;;
    --report) report=$(realpath "$2"); shift 2 ;;
    *) echo "benches/soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  cargo build --release --locked -q --bin sockdiag_exporter
  binary=target/release/sockdiag_exporter
fi
binary=$(realpath "$binary")
[ -n "$out" ] || out=$(mktemp -d /tmp/soak.XXXXXX)
mkdir -p "$out"
case "$reuse" in lifo|fifo) ;; *) echo "benches/soak.sh: --pid-reuse lifo|fifo" >&2; exit 2 ;; esac
echo "soak: ${duration}s, ${rate} connections/s, ${procs} processes/s (pid reuse $reuse), ${held} held, poll ${poll}ms; output in $out"

# PID 1 of the namespaces is benches/soak.py: when it ends, the kernel ends every process
# left in its PID namespace, and --kill-child ends it if this script is killed.
unshare --net --pid --fork --mount-proc --kill-child \
  python3 benches/soak.py run "$binary" "$out" "$duration" "$rate" "$procs" "$poll" \
  "$sample" "$targets" "$reuse" "$heap" "$held" "$report" &
pid=$!
# unshare blocks SIGTERM while it waits for its child: SIGKILL it, and --kill-child
# then ends PID 1, which ends the whole PID namespace.
trap 'kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
status=0
wait "$pid" || status=$?
trap - EXIT INT TERM
exit "$status"
