# Shared helpers for tests/run.sh and tests/checks/*.sh. Source it; do not run it.
# Every check installs what it needs through these, so a fresh machine works.

apt_updated=""
apt_install() {
  # apt_install PACKAGE...: apt-get install, after one apt-get update per run.
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_apt() {
  # need_apt COMMAND PACKAGE...: install PACKAGEs unless COMMAND is already on PATH.
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  apt_install "$@"
  command -v "$cmd" >/dev/null 2>&1 || { echo "install of $* did not provide $cmd" >&2; return 1; }
}

need_apt_file() {
  # need_apt_file GLOB PACKAGE...: install PACKAGEs unless a file matches GLOB; for
  # binaries named after their version (Debian's php-fpm is /usr/sbin/php-fpmX.Y).
  local glob=$1; shift
  compgen -G "$glob" >/dev/null && return 0
  apt_install "$@"
  compgen -G "$glob" >/dev/null || { echo "install of $* did not provide $glob" >&2; return 1; }
}

need_pip() {
  # need_pip COMMAND PACKAGE...: pip-install PACKAGEs unless COMMAND is already on PATH.
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  python3 -m pip install -q --disable-pip-version-check "$@" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || { echo "pip install of $* did not provide $cmd" >&2; return 1; }
}

# Scaffolding of a check script with several steps: a temp dir ($TMP) and a list of
# background pids ($PIDS) cleaned up on exit, and `step NAME CMD...` that runs a step,
# prints ok/FAIL and records failures in $failed.
check_begin() {
  TMP=$(mktemp -d)
  PIDS=()
  failed=()
  trap check_cleanup EXIT
}

check_cleanup() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}

step() {
  local name=$1; shift
  echo "--- $name"
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; failed+=("$name"); fi
}

# Ends a check script: lists the failed steps and exits 1, or prints "NAME: all checks
# passed".
check_end() {
  echo
  if [ ${#failed[@]} -gt 0 ]; then
    for f in "${failed[@]}"; do echo "FAILED: $f"; done
    exit 1
  fi
  echo "$1: all checks passed"
}

# mixin_matches DIR...: build grafana/mixin (grafana/mixin/build.sh, Debian's jsonnet) into
# $TMP/mixin-build once, then fail with a diff when a committed grafana/DIR (rules,
# dashboards) differs from the build: a file changed by hand, or jsonnet changed and not
# rebuilt. Needs check_begin's $TMP.
mixin_matches() {
  local d bad=0 out=$TMP/mixin-build
  if [ ! -d "$out" ]; then
    grafana/mixin/build.sh --out "$out" 2>"$TMP/mixin-build.log" \
      || { cat "$TMP/mixin-build.log"; rm -rf "$out"; return 1; }
  fi
  for d in "$@"; do
    if ! diff -ru "grafana/$d" "$out/$d" >"$TMP/mixin.diff"; then
      echo "grafana/$d differs from a fresh build of grafana/mixin:"
      head -60 "$TMP/mixin.diff"
      bad=1
    fi
  done
  [ $bad -eq 0 ] || echo "run: grafana/mixin/build.sh and commit its output"
  return $bad
}
