#!/usr/bin/env bash
# The benchmark, in one command (needs root: network namespaces, sysctls, /proc of every
# process). See docs/benchmarks.md for what it measures and the last full run.
#
#   benches/run.sh           full run: 10k, 100k and 1.1M sockets (74% TIME_WAIT), the
#                            all-owned ESTABLISHED load at 100k and 1.1M, attribution at
#                            100k sockets all owned by processes, 200 namespaces of 2k
#                            sockets, 20 of 50k and a node with 200 pods; release build;
#                            prints the tables and issue 27's targets (met, missed, not
#                            run) and writes them into docs/benchmarks.md (20-25 min)
#   benches/run.sh --smoke   CI variant: 10k sockets of both loads, 4 namespaces of 500
#                            and 10 pods, debug build, prints the figures and writes
#                            nothing; fails only if the harness fails
#
# Other arguments go to the bench program: --scales 100k,1.1M --owned 100k,1.1M|0
# --attribution 0 --reps 3
# --scrape-seconds 5 --report FILE --hold SECONDS (keep each load up for profiling)
# --namespaces 200x2k,20x50k|0 --pods 200|0 --quick (polls and floors only).
# SOCKDIAG_BENCH_OTHER_POLLER=PATH (the bench binary of another build) polls beside ours
# on the same loads: an A/B within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

if [ "$(id -u)" != 0 ]; then
  echo "benches/run.sh needs root (network namespaces, sysctls)" >&2
  exit 1
fi
need_apt ip iproute2
need_apt ss iproute2
need_apt prometheus-node-exporter prometheus-node-exporter

smoke=0
for arg in "$@"; do
  [ "$arg" = --smoke ] && smoke=1
done

# The bench sets the host's tcp_child_ehash_entries while it creates each namespace and
# restores it; this restores it too if the bench is killed.
ehash=/proc/sys/net/ipv4/tcp_child_ehash_entries
old_ehash=$(cat "$ehash")
trap 'echo "$old_ehash" > "$ehash"' EXIT

if [ "$smoke" = 1 ]; then
  # Debug build: the CI has just built the dev profile for cargo test, and the figures
  # of a smoke run are reported, never asserted.
  BENCH_COMMAND="benches/run.sh${*:+ $*}" cargo bench --locked --profile dev --bench poll -- "$@"
else
  BENCH_COMMAND="benches/run.sh${*:+ $*}" cargo bench --locked --bench poll -- \
    --report docs/benchmarks.md "$@"
fi
