#!/usr/bin/env bash
# Runs every fuzz target (or those named) one after the other, each until
# FUZZ_RUNS executions (default 10,000,000) or FUZZ_MAX_TIME seconds (default 1800),
# whichever comes first, then minimizes its corpus (cargo fuzz cmin, by edge coverage:
# -use_counters=0 keeps the committed corpus small) and prints a table: target,
# executions, wall time of the fuzzing (the build before it excluded), exec/s, corpus
# size after minimization, findings.
#
#   fuzz/run.sh                       # every target, 10M executions or 30 minutes each
#   FUZZ_MAX_TIME=600 fuzz/run.sh cgroup sysctl
#   fuzz/run.sh --seed                # rebuild the seeds (fuzz/seed.sh) and merge them in
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if
# missing. Targets are built without a sanitizer (the crate forbids unsafe code) and with
# debug assertions, so an arithmetic overflow is a finding too. An input that takes more
# than 10 s is reported as a hang (libFuzzer -timeout). Findings land in
# fuzz/artifacts/TARGET/; the corpus in fuzz/corpus/TARGET/ is updated in place.
set -uo pipefail
cd "$(dirname "$0")"

runs=${FUZZ_RUNS:-10000000}
max_time=${FUZZ_MAX_TIME:-1800}
all=(sock_diag_inet sock_diag_unix sock_diag_udp proc_net_snmp sysctl cgroup docker_config runtime_spec podman_conmon config_toml web_config)

seed=0
targets=()
for arg in "$@"; do
  case $arg in
    --seed) seed=1 ;;
    -*) echo "usage: fuzz/run.sh [--seed] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || exit 1
fi

fuzz=(cargo +nightly fuzz)
build_flags=(--sanitizer none --debug-assertions)
"${fuzz[@]}" build "${build_flags[@]}" || exit 1

if [ "$seed" = 1 ]; then
  bash ./seed.sh || exit 1
  for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp "seeds/$t"/* "corpus/$t/"
    "${fuzz[@]}" cmin "${build_flags[@]}" "$t" "corpus/$t" -- -use_counters=0 >/dev/null 2>&1 || exit 1
  done
fi

logs=target/run-logs
mkdir -p "$logs"
rows=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "artifacts/$t" | wc -l)
  "${fuzz[@]}" build "${build_flags[@]}" "$t" >/dev/null 2>&1 || exit 1
  start=$(date +%s.%N)
  "${fuzz[@]}" run "${build_flags[@]}" "$t" "corpus/$t" -- \
    -runs="$runs" -max_total_time="$max_time" -timeout=10 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1
  status=$?
  end=$(date +%s.%N)
  "${fuzz[@]}" cmin "${build_flags[@]}" "$t" "corpus/$t" -- -use_counters=0 >>"$logs/$t.log" 2>&1
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  wall=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", e - s }')
  rate=$(awk -v n="${execs:-0}" -v w="$wall" 'BEGIN { printf "%.0f", (w > 0 ? n / w : 0) }')
  files=$(ls "corpus/$t" | wc -l)
  bytes=$(cat "corpus/$t"/* | wc -c)
  found=$(( $(ls "artifacts/$t" | wc -l) - before ))
  [ "$status" = 0 ] || [ "$found" -gt 0 ] || found="exit $status"
  rows+=("$(printf '| %s | %s | %s s | %s | %s files, %s bytes | %s |' \
    "$t" "${execs:-?}" "$wall" "$rate" "$files" "$bytes" "$found")")
  echo "${rows[-1]}"
done

echo
echo "FUZZ_RUNS=$runs FUZZ_MAX_TIME=$max_time, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "| target | executions | wall time | exec/s | corpus | findings |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
