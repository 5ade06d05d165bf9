#!/usr/bin/env bash
# Smoke run of the namespace discovery bench (benches/netns.rs): 20 namespaces in
# container-like cgroups, discovery and setns round trips, on the debug build. Prints the
# figures; fails only if the bench itself fails (it also removes what it made), never on
# a timing. The full run (200 namespaces, release) is in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
need_apt unshare util-linux
started=$(date +%s)
timeout 300 cargo bench --locked --profile dev --bench netns -- 20 --reps 3
echo "netns bench smoke: ok in $(($(date +%s) - started)) s"
