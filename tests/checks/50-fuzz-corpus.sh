#!/usr/bin/env bash
# Replays every committed fuzz corpus file (fuzz/corpus/TARGET/: the real-capture seeds,
# what coverage-guided fuzzing kept, and every crash input found) through the fuzz
# targets' functions, on the stable toolchain: no nightly, no cargo-fuzz, no libFuzzer
# (`--no-default-features`). A panic on any file fails. The fuzzing itself is fuzz/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
# The exporter's target directory: the dependencies `cargo test` built there are reused
# (fuzz/Cargo.lock pins the same versions as Cargo.lock), so only what differs is built.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target} \
  cargo test --locked --manifest-path fuzz/Cargo.toml --no-default-features --lib
files=$(find fuzz/corpus -type f | wc -l)
echo "fuzz corpus replay: $files files, ok in $(($(date +%s) - started)) s"
