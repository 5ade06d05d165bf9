#!/usr/bin/env bash
# The exporter under the deploy manifests' memory limit with 1M TCP sockets, every one held
# by a process (docs/reliability.md, "Memory limit"). Needs root: network namespaces, a
# memory cgroup.
#
#   benches/memory_limit.sh [LIMIT ...]     default: 128M (the DaemonSet limit) and 32M
#                                           (its request); about 3 minutes
#
# The poll benchmark (benches/poll, as benches/run.sh runs it) builds its attribution load,
# 1M ESTABLISHED sockets spread over 120 processes (the worst case for memory: the /proc
# index holds an owner per socket), in a private network namespace and holds it. Meanwhile
# the release exporter runs in that namespace, inside a fresh memory cgroup per limit, with
# `--poll.interval=1s` and every namespace sampled (the manifests' defaults): the time to
# its first poll (readiness), then POLLS (30) more seconds. Reported per limit: the
# cgroup's peak charge (everything the kernel charges to the exporter, not only its RSS)
# and its kernel part, the exporter's VmHWM, OOM kills, failed polls, and the sockets the
# last scrape counted against `ss`. Every process is stopped by its pid and every cgroup
# removed.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "benches/memory_limit.sh needs root (network namespaces, a memory cgroup)" >&2
  exit 1
fi
need_apt ip iproute2
need_apt nsenter util-linux
need_apt curl curl

limits=("$@")
[ ${#limits[@]} -gt 0 ] || limits=(128M 32M)
polls=${POLLS:-30}
port=10127

cargo build --locked --release --bin sockdiag_exporter
exporter=$PWD/target/release/sockdiag_exporter

# cgroup v2 (memory.max, memory.peak) or v1 (memory.limit_in_bytes, max_usage_in_bytes).
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg_root=/sys/fs/cgroup v2=1
else
  cg_root=/sys/fs/cgroup/memory v2=0
fi

# The poll benchmark sets the host's tcp_child_ehash_entries while it creates its namespace;
# restore it here too, because the benchmark is stopped before it would.
ehash=/proc/sys/net/ipv4/tcp_child_ehash_entries
old_ehash=$(cat "$ehash")
log=$(mktemp)
cgroup=
bench_pid=
exporter_pid=
cleanup() {
  [ -n "$exporter_pid" ] && kill -9 "$exporter_pid" 2>/dev/null || true
  # The whole process group: cargo, the benchmark under it and its load processes.
  [ -n "$bench_pid" ] && kill -TERM -- "-$bench_pid" 2>/dev/null || true
  [ -n "$bench_pid" ] && wait "$bench_pid" 2>/dev/null || true
  [ -n "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
  rm -f "$log"
  echo "$old_ehash" > "$ehash"
}
trap cleanup EXIT

# Held longer than needed: the load is stopped (by pid) once the last limit is measured.
hold=$(( (polls + 330) * ${#limits[@]} ))
setsid cargo bench --locked --bench poll -- --scales 0 --attribution 1M --hold "$hold" --reps 1 \
  --namespaces 0 --pods 0 >"$log" 2>&1 &
bench_pid=$!
echo "building the 1M-socket load (log: $log)"
until netns_pid=$(sed -n 's/.*nsenter --net=\/proc\/\([0-9]*\)\/ns\/net.*/\1/p' "$log") && [ -n "$netns_pid" ]; do
  if ! kill -0 "$bench_pid" 2>/dev/null; then cat "$log"; echo "the load did not come up" >&2; exit 1; fi
  sleep 2
done
grep -E 'built [0-9]+ sockets' "$log"
in_ns() { nsenter --net="/proc/$netns_pid/ns/net" "$@"; }

metric() { # NAME FILTER: the sum of a family's samples whose labels match FILTER
  awk -v name="$1" -v filter="$2" '(index($1, name "{") == 1 || $1 == name) && $1 ~ filter { s += $2 } END { printf "%d", s }' "$3"
}

printf '\n| limit | first poll | then | last poll | failed polls | cgroup peak (kernel part) | VmHWM | OOM kills | sockets counted / `ss` |\n|---|---|---|---|---|---|---|---|---|\n' > "$log.table"
for limit in "${limits[@]}"; do
  cgroup=$cg_root/sockdiag-memory-limit-$$
  mkdir "$cgroup"
  if [ "$v2" = 1 ]; then
    echo "$limit" > "$cgroup/memory.max"
    echo 0 > "$cgroup/memory.swap.max" 2>/dev/null || true
  else
    echo "$limit" > "$cgroup/memory.limit_in_bytes"
  fi
  # The shell joins the cgroup before it becomes the exporter, so every page is charged.
  sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cgroup" \
    nsenter --net="/proc/$netns_pid/ns/net" "$exporter" \
    --web.listen-address="127.0.0.1:$port" --poll.interval=1s --log.level=warn &
  exporter_pid=$!
  # The first poll scans every process's fds: time it apart from the polls that follow.
  started=$(date +%s.%N)
  first=
  for _ in $(seq 600); do
    if in_ns curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
      first=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')
      break
    fi
    kill -0 "$exporter_pid" 2>/dev/null || break
    sleep 0.5
  done
  [ -n "$first" ] || first="not within 300 s"
  sleep "$polls"
  # What the exporter should count: every TCP socket in the namespace (the load, the
  # exporter's listener, the TIME_WAIT of the readiness probes), read just before the
  # scrape, whose own connection is not in any poll yet.
  census=$(in_ns ss -tan -H | wc -l)
  scrape=$(mktemp)
  in_ns curl -sf "http://127.0.0.1:$port/metrics" > "$scrape" || echo "scrape failed" >&2
  # The load's namespace is ours to the exporter: the label of the namespace it runs in.
  own=$(awk -F'"' '/^sockdiag_netns_info/ && /inode="'"$(stat -L -c %i /proc/$netns_pid/ns/net)"'"/ { for (i = 1; i < NF; i++) if ($i ~ /netns=$/) print $(i+1) }' "$scrape" | head -1)
  counted=$(metric sockdiag_tcp_sockets "netns=\"$own\"" "$scrape")
  failed=$(metric sockdiag_poll_errors_total . "$scrape")
  duration=$(awk '/^sockdiag_poll_duration_seconds / { printf "%.0f ms", $2 * 1000 }' "$scrape")
  hwm=$(awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$exporter_pid/status" 2>/dev/null || echo "exited")
  if [ "$v2" = 1 ]; then
    peak=$(cat "$cgroup/memory.peak" 2>/dev/null || echo 0)
    kernel=$(awk '$1 == "kernel" || $1 == "slab" { s += $2 } END { print s + 0 }' "$cgroup/memory.stat")
    ooms=$(awk '/^oom_kill / { print $2 }' "$cgroup/memory.events")
  else
    peak=$(cat "$cgroup/memory.max_usage_in_bytes")
    kernel=$(cat "$cgroup/memory.kmem.max_usage_in_bytes" 2>/dev/null || echo 0)
    ooms=$(awk '/^oom_kill / { print $2 } END {}' "$cgroup/memory.oom_control")
    ooms=${ooms:-$(cat "$cgroup/memory.failcnt") failcnt}
  fi
  alive=yes; kill -0 "$exporter_pid" 2>/dev/null || alive="no (exited)"
  kill -TERM "$exporter_pid" 2>/dev/null || true
  status=0; wait "$exporter_pid" 2>/dev/null || status=$?
  exporter_pid=
  rmdir "$cgroup"; cgroup=
  printf '| %s | %s | %s s, polls every 1 s | %s | %s | %.1f MiB (%.1f MiB) | %s | %s | %s / %s |\n' "$limit" "$first" \
    "$polls" "$duration" "$failed" "$(awk -v b="$peak" 'BEGIN { print b / 1048576 }')" \
    "$(awk -v b="$kernel" 'BEGIN { print b / 1048576 }')" "$hwm" "$ooms" "$counted" "$census" >> "$log.table"
  echo "limit $limit: alive=$alive, exit status $status"
  rm -f "$scrape"
done
cat "$log.table"; rm -f "$log.table"
