#!/usr/bin/env bash
# TLS and basic-auth scrape costs (docs/benchmarks.md, "Web security"): release build, in a
# private network namespace on loopback, certificates made by openssl. Needs root. ~1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "benches/web_tls.sh needs root (a private network namespace)" >&2
  exit 1
fi
need_apt ip iproute2
need_apt openssl openssl
cargo bench --locked --bench web_tls
