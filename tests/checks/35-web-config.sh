#!/usr/bin/env bash
# The shipped web config examples (deploy/web-config/*.yml) pass `promtool check web-config`
# (Prometheus' own exporter-toolkit reading them) and start the exporter, with certificates
# made here by openssl.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
need_apt promtool prometheus || exit 1
need_apt openssl openssl || exit 1
check_begin

make_certs() (
  cd "$TMP" || exit 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.crt -days 2 -subj /CN=example-ca 2>/dev/null &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key \
      -out tls.crt -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
)

promtool_accepts() {
  cp "deploy/web-config/$1" "$TMP/$1" && promtool check web-config "$TMP/$1"
}

exporter_accepts() {
  # Validation happens before any socket is opened: a bad file exits 78 at once; a good one
  # gets as far as binding, which an unused address lets it do. Stopped by pid.
  cargo build -q --locked --bin sockdiag_exporter || return 1
  unshare -n sh -c "ip link set lo up; exec target/debug/sockdiag_exporter \
    --web.config.file=$TMP/$1 --web.listen-address=127.0.0.1:10120 --poll.interval=1h" \
    >"$TMP/$1.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  sleep 1
  kill -0 "$pid" 2>/dev/null || { cat "$TMP/$1.log"; return 1; }
}

step "openssl makes the example certificates" make_certs
for file in deploy/web-config/*.yml; do
  name=$(basename "$file")
  step "promtool check web-config $name" promtool_accepts "$name"
  step "exporter starts with $name" exporter_accepts "$name"
done
check_end 35-web-config
