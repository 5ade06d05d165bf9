#!/usr/bin/env bash
# Smoke run of the benchmark harness (benches/run.sh --smoke): builds a 10k-socket load
# across 120 processes in a private network namespace and measures the exporter's poll,
# the floor, ss, ss -p, node_exporter and 32 concurrent scrapes, then the same poll and
# floor on 10k sockets all ESTABLISHED and owned, on the debug build.
# Prints the figures; fails only if the harness itself fails, never on a timing.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
timeout 600 benches/run.sh --smoke
echo "bench smoke: ok in $(($(date +%s) - started)) s"
