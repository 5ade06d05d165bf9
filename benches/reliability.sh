#!/usr/bin/env bash
# The hostile-client cases of docs/reliability.md against the release binary, in a private
# network namespace on loopback. Needs root; about 2 minutes (the idle timeout is waited out)
# for the issue-16 cases. `benches/reliability.sh overload scaling signals nofile` runs the
# issue-17 cases alone (about 4 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "benches/reliability.sh needs root (a private network namespace)" >&2
  exit 1
fi
need_apt ip iproute2
need_apt prlimit util-linux
cargo build --locked --release --bin sockdiag_exporter
# A PID namespace of its own too: the exporter's polls read only the bench's /proc, not
# the descriptors of every process on a shared host.
exec unshare -n --pid --fork --kill-child --mount-proc sh -c 'ip link set lo up && exec python3 benches/reliability.py target/release/sockdiag_exporter "$@"' sh "$@"
