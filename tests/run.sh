#!/usr/bin/env bash
# The one command that runs every test (see README "Run every test").
#
# Installs what it needs on a fresh Debian machine (root, apt-get and pip reachable), then:
#   1. cargo test: unit tests and the integration binary (real sockets in private network
#      namespaces, so it needs root);
#   2. every tests/checks/*.sh: rule, dashboard, deploy, exposition and landing-page checks against real
#      promtool / amtool / Prometheus.
# Ends with one line "tests/run.sh: N passed, N failed" and a non-zero exit on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh needs root: the integration tests create network namespaces" >&2
  exit 1
fi

need_apt ip iproute2 || exit 1
need_apt ss iproute2 || exit 1
need_apt unshare util-linux || exit 1
need_apt sysctl procps || exit 1
need_apt promtool prometheus || exit 1
need_apt amtool prometheus-alertmanager || exit 1
# The UNIX listener test runs Debian's php-fpm (its service is never started: the test
# runs its own master in a private namespace).
need_apt_file '/usr/sbin/php-fpm[0-9]*' php-fpm || exit 1
need_apt tmux tmux || exit 1
# tests/checks/80-package.sh: a clean Debian root, the package's lint, and a Docker engine
# (started by the check itself when none runs).
need_apt debootstrap debootstrap || exit 1
need_apt lintian lintian || exit 1
need_apt dockerd docker.io || exit 1

passed=0
failed=0
failures=()
run() {
  local name=$1; shift
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

run "cargo test" cargo test --locked --workspace --all-features -- --test-threads=2
for check in tests/checks/*.sh; do
  [ -e "$check" ] || continue
  run "$check" bash "$check"
done

echo
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "tests/run.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
