#!/usr/bin/env bash
# The layering the compiler cannot see: the core crate (crates/core) must build without an
# async runtime or HTTP. A wrong-way import (core naming the daemon crate) does not compile
# at all, since core cannot depend on its dependent; this check guards the other half of
# docs/architecture.md's rule, that core's dependency tree holds no tokio, hyper, axum,
# tower or prometheus-client.
set -euo pipefail
cd "$(dirname "$0")/../.."
forbidden='^(tokio|tokio-rustls|hyper|hyper-util|axum|tower|prometheus-client|rustls|bcrypt|crossterm|sockdiag-exporter) '
tree=$(cargo tree --locked -p sockdiag-core -e normal --prefix none)
if bad=$(grep -E "$forbidden" <<<"$tree" | sort -u) && [ -n "$bad" ]; then
  echo "FAIL: sockdiag-core depends on what only the daemon may use:"
  echo "$bad"
  exit 1
fi
# Self-test: the same pattern finds tokio in the daemon's tree, so it can fail.
if ! cargo tree --locked -p sockdiag-exporter -e normal --prefix none | grep -qE "$forbidden"; then
  echo "FAIL: the layering pattern matches nothing even in the daemon's tree"
  exit 1
fi
echo "layering: sockdiag-core has $(sort -u <<<"$tree" | wc -l) crates in its tree, none of the daemon's"
