#!/usr/bin/env bash
# End to end on loopback, in a private network namespace: one pass/fail for tests/run.sh.
#
# Scenario (docs/incidents.md #3): tests/e2e/dbserver.py ("fake-mysqld", 127.0.0.1:3306) closes
# the connections it is handed; tests/e2e/leaker.py ("leaky-app") opens 5 per second and never
# closes them (CLOSE_WAIT, outbound, remote port 3306), plus 5 healthy ones per second that it
# closes itself (TIME_WAIT). Both run in an application namespace ($APP_NS, as a container's
# would); everything else runs in a monitoring namespace ($NS); both are created here:
#   sockdiag_exporter (every namespace: it finds the application's and labels it netns=$APP_NS)
#     (target/debug, --poll.interval=1s, CLOSE_WAIT stale after 5s), serving over TLS with
#     basic auth (deploy/web-config/web.yml)
#   Prometheus (Debian package; scrape and evaluation every 1s) loading the SHIPPED rules
#     through the documented test overlay: grafana/tools/rules-overlay.py --scale 60
#     (docs/alerts.md "Test overlay": every `for:`, range and offset / 60; nothing else)
#   Alertmanager (Debian package) with tests/e2e/am-config.py's copy of
#     grafana/alertmanager/alertmanager.yml: the shipped route tree and inhibit rules, only
#     group_wait -> 0s, group_interval -> 1s and each receiver's integrations -> a webhook
#   tests/e2e/receiver.py: the webhook, records every notification (payload version 4)
# Asserts:
#   1. the test Alertmanager config keeps the shipped routing tree (amtool config routes is
#      identical) and routes SockdiagCloseWaitGrowing/critical to pager;
#   2. a firing SockdiagCloseWaitGrowing notification reaches the pager receiver with
#      netns=<the application namespace>, process="leaky-app", port="3306",
#      direction="outbound", severity="critical", job, instance, and a summary naming the
#      namespace, the process and the port;
#   3. after the leaker closes its sockets (SIGUSR1; the process stays alive), a resolved
#      notification for exactly the same label set reaches pager;
#   2b. a firing SockdiagUdpReceiveDrops notification reaches pager for a UDP receiver in the
#      application namespace ("udp-sink", SO_RCVBUF 4096, never reads, flooded 200/s):
#      netns, process, port="8125", direction="inbound", severity="critical";
#   4. pager got nothing but those alerts (no false page); ticket never got a page;
#   5. every dashboard query (panels and variables, Grafana variables substituted by
#      grafana/tools/lint-dashboards.py's substitute() with the scenario's job, instance,
#      process and port) answers HTTP 200 at the time of the page, and the ones the scenario
#      fills (tests/e2e/dashboards.py MUST_FILL) return data with the expected labels;
#   6. the live /metrics matches the metric contract (tests/e2e/contract.py): every listed
#      name is exposed, none marked `pending` is.
# The rules and dashboards are the committed grafana/rules and grafana/dashboards, or, with
# SOCKDIAG_E2E_MIXIN_CONFIG=FILE, a build of grafana/mixin with that _config (the non-default
# build of tests/checks/35-mixin-config.sh), scraped as job SOCKDIAG_E2E_JOB (default
# sockdiag) with the target label SOCKDIAG_E2E_CLUSTER_LABEL=SOCKDIAG_E2E_CLUSTER when set
# (the page must carry it); SOCKDIAG_E2E_UID_PREFIX names the build's dashboardUidPrefix.
# Every process is started in the background, its pid recorded, and stopped by that pid in
# the EXIT trap (also on failure or Ctrl-C); the namespace is deleted. On failure the last
# lines of every process's log are printed. Takes about 45 s (page ~32 s after the leak
# starts, resolved ~3 s after it stops) once the exporter is built and the packages are
# installed; every wait is bounded (a run that fails at the last wait ends within ~4 minutes).
# Run: bash tests/checks/30-e2e.sh (root; installs what it needs on a fresh Debian).
# SOCKDIAG_E2E_EXPORTER=PATH uses that binary instead of building target/debug;
# SOCKDIAG_E2E_KEEP=1 keeps the temporary directory (configs, logs, notifications.jsonl).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

T_START=$(date +%s.%N)
if [ "$(id -u)" != 0 ]; then
  echo "FAIL: 30-e2e needs root (it creates a network namespace)"; exit 1
fi
need_apt ip iproute2 || exit 1
need_apt python3 python3 || exit 1
need_apt curl curl || exit 1
need_apt openssl openssl || exit 1
need_apt prometheus prometheus || exit 1
need_apt promtool prometheus || exit 1
need_apt prometheus-alertmanager prometheus-alertmanager || exit 1
need_apt amtool prometheus-alertmanager || exit 1

if [ -n "${SOCKDIAG_E2E_EXPORTER:-}" ]; then
  BIN=$SOCKDIAG_E2E_EXPORTER
else
  command -v cargo >/dev/null || { echo "FAIL: cargo not found (or set SOCKDIAG_E2E_EXPORTER)"; exit 1; }
  cargo build --locked -q 2>&1 | tail -20
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: cargo build --locked failed"; exit 1; }
  BIN=target/debug/sockdiag_exporter
fi
[ -x "$BIN" ] || { echo "FAIL: no exporter binary at $BIN"; exit 1; }

# Fixed ports: the namespace is private, nothing else listens in it.
EXPORTER=127.0.0.1:10120
PROM=127.0.0.1:9090
AM=127.0.0.1:9093
HOOK=127.0.0.1:9095
DB_PORT=3306
LEAKER=leaky-app
SERVER=fake-mysqld
JOB=${SOCKDIAG_E2E_JOB:-sockdiag}
CLUSTER_LABEL=${SOCKDIAG_E2E_CLUSTER_LABEL:-}
CLUSTER=${SOCKDIAG_E2E_CLUSTER:-}
UID_PREFIX=${SOCKDIAG_E2E_UID_PREFIX:-sockdiag-}
ALERT=SockdiagCloseWaitGrowing
# Beside the leak (docs/incidents.md, incident 7): a UDP receiver with a 4 KiB buffer that never reads,
# flooded 200 datagrams/s from the start; it must page with its port, process and namespace.
UDP_ALERT=SockdiagUdpReceiveDrops
UDP_PORT=8125
UDP_SINK=udp-sink
UDP_FIRE_TIMEOUT=60    # expected ~15 s after the flood starts: [5m]/60 and for: 5m/60
RATE=5                 # leaked sockets per second (and as many healthy ones)
FIRE_TIMEOUT=100       # expected ~32 s: 16 s to pass the floors, then for: 15m/60
RESOLVE_TIMEOUT=30     # expected ~3 s

TMP=$(mktemp -d /tmp/sockdiag-e2e.XXXXXX)
NS=sockdiag-e2e-$$
# The application's namespace, as a container's: the exporter, in $NS, finds it and pages
# with netns=$APP_NS.
APP_NS=sockdiag-e2e-app-$$
NS_CREATED=""
PIDS=()
NAMES=()
FG_PID=""

stop_pid() { # PID NAME: TERM, up to 5 s, then KILL
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "e2e: $name (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local i pid
  [ -n "$FG_PID" ] && stop_pid "$FG_PID" "helper"
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" "${NAMES[i]}"; done
  for ns in ${NS_CREATED:-}; do
    # Anything still inside our namespaces was started by this test: report it, stop it by pid.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      echo "e2e: pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) was still in $ns: stopping it"
      stop_pid "$pid" "pid $pid"
    done
    ip netns del "$ns" 2>/dev/null || echo "e2e: could not delete network namespace $ns"
  done
  if [ -n "${SOCKDIAG_E2E_KEEP:-}" ]; then echo "e2e: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'echo "e2e: interrupted"; exit 130' INT TERM HUP

dump_logs() { # the last lines of every started process's log
  local i f
  for i in "${!PIDS[@]}"; do
    f=$TMP/${NAMES[i]}.log
    if kill -0 "${PIDS[i]}" 2>/dev/null; then
      echo "----- ${NAMES[i]} (pid ${PIDS[i]}, running): last lines of its log"
    else
      echo "----- ${NAMES[i]} (pid ${PIDS[i]}, NOT RUNNING any more): last lines of its log"
    fi
    grep -v 'msg=flushing' "$f" 2>/dev/null | tail -n 25  # Alertmanager's debug log flushes every second
  done
}

fail() {
  echo "FAIL: $*"
  dump_logs
  exit 1
}

nsx() { ip netns exec "$NS" "$@"; }

run_fg() { # CMD...: run a long wait in the background and wait for it, so that a signal to
  # this script runs the trap at once (bash defers traps while a foreground child runs);
  # cleanup stops it by pid.
  local rc
  "$@" &
  FG_PID=$!
  wait "$FG_PID"
  rc=$?
  FG_PID=""
  return $rc
}

start() { # NAME CMD...: run CMD in the monitoring namespace ($NS), see start_in.
  start_in "$NS" "$@"
}

start_in() { # NETNS NAME CMD...: run CMD in NETNS in the background and record its pid.
  # A plain command (not a function, not a subshell): bash forks and execs `ip`, and
  # `ip netns exec` execs CMD, so $! is CMD's own pid.
  local netns=$1 name=$2 pid comm i; shift 2
  ip netns exec "$netns" "$@" >"$TMP/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  NAMES+=("$name")
  for i in $(seq 20); do  # wait for the exec (comm changes from bash/ip), at most 2 s
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || break
    case $comm in bash|ip) sleep 0.1 ;; *) break ;; esac
  done
  case ${comm:-} in bash|ip) fail "$name: pid $pid is still $comm, not the process itself" ;; esac
  echo "e2e: started $name (pid $pid)"
}

pid_of() { local i; for i in "${!NAMES[@]}"; do [ "${NAMES[i]}" = "$1" ] && echo "${PIDS[i]}"; done; }

wait_http() { # NAME URL: up to 10 s
  local name=$1 url=$2 pid i
  pid=$(pid_of "$name")
  for i in $(seq 100); do
    nsx curl -sf -o /dev/null --max-time 1 "$url" && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) exited during start-up"
    sleep 0.1
  done
  fail "$name not ready after 10 s: $url"
}

promql() { # EXPR: the instant vector's size (or -1 on error)
  nsx curl -sf --max-time 5 "http://$PROM/api/v1/query" --data-urlencode "query=$1" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))' 2>/dev/null || echo -1
}

wait_promql() { # WHAT EXPR TIMEOUT_S: until EXPR returns at least one series
  local what=$1 expr=$2 timeout=$3 i
  for i in $(seq $((timeout * 5))); do
    [ "$(promql "$expr")" -gt 0 ] 2>/dev/null && return 0
    sleep 0.2
  done
  fail "$what: no data after $timeout s for: $expr"
}

since() { python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

RULES_WHAT="shipped rules"
[ -n "${SOCKDIAG_E2E_MIXIN_CONFIG:-}" ] && RULES_WHAT="rules of the mixin built with $SOCKDIAG_E2E_MIXIN_CONFIG"
echo "=== 30-e2e: CLOSE_WAIT leak -> exporter -> Prometheus ($RULES_WHAT, overlay) -> Alertmanager (shipped routes) -> webhook"
echo "e2e: $("$BIN" --version 2>&1 | head -1); $(prometheus --version 2>&1 | head -1); $(prometheus-alertmanager --version 2>&1 | head -1)"

# ---- configuration ------------------------------------------------------------------------
RULES_DIR=grafana/rules
DASHBOARDS_DIR=grafana/dashboards
if [ -n "${SOCKDIAG_E2E_MIXIN_CONFIG:-}" ]; then
  need_apt jsonnet jsonnet || exit 1
  grafana/mixin/build.sh --config "$SOCKDIAG_E2E_MIXIN_CONFIG" --out "$TMP/mixin" 2>"$TMP/mixin.out" \
    || { cat "$TMP/mixin.out"; fail "grafana/mixin/build.sh --config $SOCKDIAG_E2E_MIXIN_CONFIG failed"; }
  RULES_DIR=$TMP/mixin/rules
  DASHBOARDS_DIR=$TMP/mixin/dashboards
  echo "e2e: mixin built with _config from $SOCKDIAG_E2E_MIXIN_CONFIG"
fi
python3 grafana/tools/rules-overlay.py --scale 60 --out "$TMP/rules" "$RULES_DIR"/*.yml 2>"$TMP/overlay.out" \
  || { cat "$TMP/overlay.out"; fail "rules-overlay.py failed"; }
promtool check rules "$TMP"/rules/*.yml >"$TMP/promtool.out" 2>&1 \
  || { cat "$TMP/promtool.out"; fail "promtool check rules on the overlay failed"; }
echo "e2e: rules: $RULES_DIR/*.yml through rules-overlay.py --scale 60 ($(tail -1 "$TMP/overlay.out" | grep -o '^[^:]*: [0-9]* durations rewritten'))"

python3 tests/e2e/am-config.py --webhook "http://$HOOK" grafana/alertmanager/alertmanager.yml \
  >"$TMP/alertmanager.yml" 2>"$TMP/am-config.out" || { cat "$TMP/am-config.out"; fail "am-config.py failed"; }
sed 's/^/e2e: /' "$TMP/am-config.out"
amtool check-config "$TMP/alertmanager.yml" >"$TMP/amtool.out" 2>&1 \
  || { cat "$TMP/amtool.out" "$TMP/alertmanager.yml"; fail "amtool check-config on the test config failed"; }
diff <(amtool config routes --config.file=grafana/alertmanager/alertmanager.yml 2>/dev/null) \
     <(amtool config routes --config.file="$TMP/alertmanager.yml" 2>/dev/null) >"$TMP/routes.diff" \
  || { cat "$TMP/routes.diff"; fail "the test Alertmanager config does not keep the shipped routing tree"; }
amtool config routes test --config.file="$TMP/alertmanager.yml" --verify.receivers=pager \
  alertname=$ALERT severity=critical job=$JOB instance=$EXPORTER >/dev/null 2>&1 \
  || fail "the test Alertmanager config does not route $ALERT/critical to pager"
echo "e2e: alertmanager: shipped routing tree kept (amtool config routes identical); $ALERT/critical -> pager"

TARGET_LABELS=""
[ -n "$CLUSTER_LABEL" ] && TARGET_LABELS=", labels: {$CLUSTER_LABEL: \"$CLUSTER\"}"

# TLS and basic auth on, as in production (README "Securing the endpoint"): the shipped
# example web config (user prometheus, password change-me) with a certificate made here.
cp deploy/web-config/web.yml "$TMP/web.yml" || fail "no deploy/web-config/web.yml"
(cd "$TMP" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout tls.key -out tls.crt -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1) \
  >/dev/null 2>&1 || fail "openssl could not make the exporter's certificate"

cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$TMP/rules/*.yml"]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["$AM"]}]
scrape_configs:
  - job_name: $JOB
    scheme: https
    tls_config: {ca_file: "$TMP/tls.crt"}
    basic_auth: {username: prometheus, password: change-me}
    static_configs: [{targets: ["$EXPORTER"]$TARGET_LABELS}]
EOF
promtool check config "$TMP/prometheus.yml" >"$TMP/promtool-config.out" 2>&1 \
  || { cat "$TMP/promtool-config.out"; fail "promtool check config failed"; }

# ---- the namespace and the processes --------------------------------------------------------
for ns in "$NS" "$APP_NS"; do
  ip netns add "$ns" || fail "ip netns add $ns failed"
  NS_CREATED="${NS_CREATED:-} $ns"
  ip -n "$ns" link set lo up || fail "ip link set lo up in $ns failed"
done
echo "e2e: network namespaces $NS (monitoring) and $APP_NS (the application), loopback only"

start receiver python3 tests/e2e/receiver.py --listen "$HOOK" --out "$TMP/notifications.jsonl" --max-seconds 280
start alertmanager prometheus-alertmanager --config.file="$TMP/alertmanager.yml" --storage.path="$TMP/am-data" \
  --web.listen-address="$AM" --cluster.listen-address= --log.level=debug
# A clean environment: the exporter rejects unknown SOCKDIAG_* variables (e.g. this script's
# SOCKDIAG_E2E_KEEP) and must not pick up the caller's configuration.
start exporter env -i PATH="$PATH" SOCKDIAG_CLOSE_WAIT_STALE_AFTER=5s SOCKDIAG_LISTEN_POLL_INTERVAL=200ms \
  "$BIN" --web.listen-address="$EXPORTER" --poll.interval=1s --log.level=debug \
  --web.config.file="$TMP/web.yml"
# A UNIX listener beside it (as php-fpm's), so that the UNIX families and panels have data.
start_in "$APP_NS" unixserver python3 -c 'import socket, time
open("/proc/self/comm", "w").write("fake-fpm")
s = socket.socket(socket.AF_UNIX)
s.bind("\0sockdiag-e2e-fpm")
s.listen(16)
time.sleep(280)'
# The UDP receiver that cannot keep up (a statsd sink), and its sender.
start_in "$APP_NS" udpsink python3 -c 'import socket, time
open("/proc/self/comm", "w").write("'"$UDP_SINK"'")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", '"$UDP_PORT"'))
time.sleep(280)'
start_in "$APP_NS" udpflood python3 -c 'import socket, time
open("/proc/self/comm", "w").write("udp-flood")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 250
while time.time() < end:
    for _ in range(20):
        s.sendto(b"e2e.metric:1|c", ("127.0.0.1", '"$UDP_PORT"'))
    time.sleep(0.1)'
start_in "$APP_NS" dbserver python3 tests/e2e/dbserver.py --name "$SERVER" --listen "127.0.0.1:$DB_PORT" --max-seconds 280
start prometheus prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="$PROM"
wait_http receiver "http://$HOOK/-/ready"
wait_http alertmanager "http://$AM/-/ready"
nsx curl -sf -o /dev/null --max-time 5 --retry 20 --retry-connrefused --retry-delay 1 \
  --cacert "$TMP/tls.crt" -u prometheus:change-me "https://$EXPORTER/metrics" \
  || fail "the exporter does not answer over TLS with basic auth"
wait_http prometheus "http://$PROM/-/ready"
wait_promql "Prometheus scraping the exporter" "up{job=\"$JOB\",instance=\"$EXPORTER\"} == 1" 30
wait_promql "the server's listener in $APP_NS seen by the exporter in $NS" \
  "sockdiag_tcp_listen_queue_limit{job=\"$JOB\",netns=\"$APP_NS\",port=\"$DB_PORT\",process=\"$SERVER\"}" 30
nsx curl -sf --max-time 5 "http://$PROM/api/v1/alertmanagers" | grep -q "$AM" \
  || fail "Prometheus does not list the Alertmanager $AM"
[ "$(promql "ALERTS{alertname=\"$ALERT\"}")" = 0 ] || fail "$ALERT is already pending/firing before the leak"
echo "e2e: all up after $(since "$T_START") s; Prometheus scrapes the exporter and knows the Alertmanager"

# ---- the leak --------------------------------------------------------------------------------
T_LEAK=$(date +%s.%N)
start_in "$APP_NS" leaker python3 tests/e2e/leaker.py --name "$LEAKER" --connect "127.0.0.1:$DB_PORT" --rate $RATE --max-seconds 250
echo "e2e: leaking $RATE CLOSE_WAIT sockets/s; waiting up to $FIRE_TIMEOUT s for the page"
run_fg python3 tests/e2e/notifications.py wait --file "$TMP/notifications.jsonl" --receiver pager --alertname $ALERT \
  --status firing --label process=$LEAKER --label port=$DB_PORT --label direction=outbound \
  --label netns=$APP_NS --summary-contains "$APP_NS" \
  --label severity=critical --label job=$JOB --label instance=$EXPORTER \
  ${CLUSTER_LABEL:+--label "$CLUSTER_LABEL=$CLUSTER"} \
  --summary-contains "$LEAKER" --summary-contains "port $DB_PORT" \
  --save "$TMP/page-labels.json" --timeout $FIRE_TIMEOUT \
  || fail "no page for the leak (see the notifications above)"
T_PAGE=$(date +%s.%N)
PAGE_AFTER=$(since "$T_LEAK")
run_fg python3 tests/e2e/notifications.py wait --file "$TMP/notifications.jsonl" --receiver pager --alertname $UDP_ALERT \
  --status firing --label process=$UDP_SINK --label port=$UDP_PORT --label direction=inbound \
  --label netns=$APP_NS --label severity=critical --label job=$JOB --label instance=$EXPORTER \
  ${CLUSTER_LABEL:+--label "$CLUSTER_LABEL=$CLUSTER"} \
  --summary-contains "$UDP_SINK" --summary-contains "port $UDP_PORT" --timeout $UDP_FIRE_TIMEOUT \
  || fail "no page for the dropping UDP receiver (see the notifications above)"
echo "e2e: $UDP_ALERT paged for $UDP_SINK :$UDP_PORT in $APP_NS"
LEAKED=$(nsx curl -sf --max-time 5 "http://$PROM/api/v1/query" --data-urlencode \
  "query=sum(sockdiag_tcp_port_sockets{process=\"$LEAKER\",state=\"close_wait\"})" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "?")' 2>/dev/null)
echo "e2e: page after $PAGE_AFTER s of leak ($LEAKED CLOSE_WAIT sockets of $LEAKER at that time)"
kill -0 "$(pid_of leaker)" 2>/dev/null || fail "the leaker exited before the leak was stopped"
# The metric contract against the live exporter, while the leak is on (the CLOSE_WAIT
# families exist only while there are CLOSE_WAIT sockets).
nsx curl -sf --max-time 5 --cacert "$TMP/tls.crt" -u prometheus:change-me "https://$EXPORTER/metrics" >"$TMP/metrics.txt" || fail "cannot read the exporter's /metrics"
python3 tests/e2e/contract.py "$TMP/metrics.txt" | sed 's/^/e2e: /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the exporter's /metrics does not match grafana/tools/sockdiag-metrics.txt"

# ---- stop the leak: the leaker closes its sockets and stays alive ------------------------------
T_STOP=$(date +%s.%N)
kill -USR1 "$(pid_of leaker)" || fail "cannot signal the leaker"
run_fg python3 tests/e2e/notifications.py wait --file "$TMP/notifications.jsonl" --receiver pager --alertname $ALERT \
  --status resolved --labels-from "$TMP/page-labels.json" --timeout $RESOLVE_TIMEOUT \
  || fail "no resolved notification after the leak was closed"
RESOLVED_AFTER=$(since "$T_STOP")
kill -0 "$(pid_of leaker)" 2>/dev/null || fail "the leaker exited: the alert must resolve because the sockets closed"
echo "e2e: resolved $RESOLVED_AFTER s after the leaker closed its sockets (the leaker is still running)"

bad=0
# Only the scenario's namespaces: the exporter sees every namespace on the machine.
python3 tests/e2e/notifications.py only --file "$TMP/notifications.jsonl" --receiver pager --alertname "$ALERT|$UDP_ALERT" \
  --netns "$NS|$APP_NS" || bad=1
python3 tests/e2e/notifications.py never --file "$TMP/notifications.jsonl" --receiver ticket --alertname $ALERT \
  --netns "$NS|$APP_NS" || bad=1
python3 tests/e2e/notifications.py never --file "$TMP/notifications.jsonl" --receiver ticket --alertname $UDP_ALERT \
  --netns "$NS|$APP_NS" || bad=1
[ $bad -eq 0 ] || fail "unexpected notifications (see above)"

# ---- every dashboard query, at the time of the page ---------------------------------------------
run_fg ip netns exec "$NS" python3 tests/e2e/dashboards.py --prometheus "http://$PROM" --time "$T_PAGE" \
  --job "$JOB" --instance $EXPORTER --process $LEAKER --port $DB_PORT --listener-process $SERVER \
  --cluster "${CLUSTER:-.*}" --netns "$NS|$APP_NS" --uid-prefix "$UID_PREFIX" \
  "$DASHBOARDS_DIR"/*.json || fail "dashboard queries (see above)"

# ---- summary -----------------------------------------------------------------------------------
echo
echo "e2e summary:"
python3 tests/e2e/notifications.py summary --file "$TMP/notifications.jsonl" --since "$T_LEAK" | sed 's/^/  /'
echo "  page ($ALERT, netns=$APP_NS process=$LEAKER port=$DB_PORT direction=outbound) at pager after $PAGE_AFTER s of leak at $RATE/s"
echo "  resolved at pager $RESOLVED_AFTER s after the leak was closed"
echo "  page ($UDP_ALERT, netns=$APP_NS process=$UDP_SINK port=$UDP_PORT direction=inbound) at pager"
echo "  dashboards: every query parsed; the scenario's panels have data"
echo "30-e2e: passed in $(since "$T_START") s"
