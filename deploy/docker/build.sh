#!/usr/bin/env bash
# The build stage of the Dockerfile, as a script so that tests/checks/45-docker-build.sh runs
# the very same recipe (no Docker engine exists in CI).
#
# Usage: [REVISION=SHA] deploy/docker/build.sh OUTDIR
#   Builds the release binary from the current directory (the crate root) and installs it
#   as OUTDIR/sockdiag_exporter. Honors CARGO_TARGET_DIR, so a caller can reuse a cache.
#   REVISION (the Dockerfile's build arg) becomes sockdiag_build_info{revision}: a build
#   context has no .git for build.rs to ask.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1

if [ -n "${REVISION:-}" ]; then
  export BUILD_GIT_REVISION=$REVISION
fi

# --locked: the image must contain exactly the dependency versions CI tested, never a fresh
# resolution made at image build time.
cargo build --release --locked --bin sockdiag_exporter

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$out"
install -m 0755 "$target_dir/release/sockdiag_exporter" "$out/sockdiag_exporter"
echo "built $out/sockdiag_exporter"
