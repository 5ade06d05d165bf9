#!/usr/bin/env bash
# Measures what the exporter costs on a host with a given number of TCP sockets: peak RSS
# (VmHWM) and average CPU at the default 15 s poll interval. The numbers size the DaemonSet's
# requests and limits (docs/deploy.md, "Resource sizing").
#
#   sudo deploy/measure.sh target/release/sockdiag_exporter 6 9000   # 108,000 sockets
#
# NPROC holder processes each open CONNS loopback connections to their own listener (2 sockets
# a connection, so 2*NPROC*CONNS sockets in all, every one with an owner to attribute). All of
# it happens in a private network namespace (unshare -n) that has only lo: nothing is sent
# anywhere else, and the namespace disappears with the last process. Needs root for unshare.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 EXPORTER_BINARY NPROC CONNS_PER_PROC" >&2
  exit 2
fi
if [ "${MEASURE_IN_NETNS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "$0: needs root (unshare -n)" >&2; exit 1; }
  MEASURE_IN_NETNS=1 exec unshare -n "$0" "$@"
fi

bin=$(readlink -f "$1") nproc=$2 per=$3
# A process holds 2 descriptors per connection.
[ $((2 * per + 16)) -le "$(ulimit -n)" ] || { echo "$0: CONNS_PER_PROC too big for ulimit -n $(ulimit -n)" >&2; exit 2; }
ip link set lo up
work=$(mktemp -d)
holders=()
exporter=""
cleanup() {
  [ -z "$exporter" ] || kill "$exporter" 2>/dev/null || true
  for h in "${holders[@]+"${holders[@]}"}"; do kill "$h" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for p in $(seq 1 "$nproc"); do
  # One source address per holder, so no holder runs short of ephemeral ports.
  python3 - "$p" "$per" "$work" <<'PY' &
import socket, sys, time
p, per, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
listener = socket.socket()
listener.bind(("127.0.0.1", 20000 + p))
listener.listen(4096)
src = "127.1.%d.%d" % (p // 250, p % 250 + 1)
held = []
for _ in range(per):
    c = socket.socket()
    c.bind((src, 0))
    c.connect(("127.0.0.1", 20000 + p))
    s, _ = listener.accept()
    held += [c, s]
open("%s/ready.%d" % (work, p), "w").close()
time.sleep(900)  # bounded: the holder ends by itself if nothing kills it
PY
  holders+=($!)
done
for p in $(seq 1 "$nproc"); do
  until [ -e "$work/ready.$p" ]; do sleep 0.2; done
done
echo "sockets: $(ss -Htan | wc -l) TCP sockets in the namespace"

"$bin" --web.listen-address=127.0.0.1:10120 --poll.interval=15s 2>"$work/stderr" &
exporter=$!
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10120/-/ready)" = 200 ] && break
  sleep 0.1
done
cpu() { awk '{print $14 + $15}' "/proc/$exporter/stat"; }
c0=$(cpu) t0=$(date +%s.%N)
# Four polls at the default interval, with a scrape every 5 s (faster than any real Prometheus).
for _ in $(seq 1 12); do
  curl -s -o /dev/null http://127.0.0.1:10120/metrics
  sleep 5
done
c1=$(cpu) t1=$(date +%s.%N)
curl -s http://127.0.0.1:10120/metrics >"$work/metrics"
grep -E '^(VmHWM|VmRSS|Threads)' "/proc/$exporter/status"
grep -E '^sockdiag_(sockets_scanned|poll_duration_seconds|unattributed_sockets) ' "$work/metrics" || true
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "cpu: %.2f s over %.0f s = %.1f millicores on average\n", (c1 - c0) / hz, t1 - t0, 1000 * (c1 - c0) / hz / (t1 - t0) }'
