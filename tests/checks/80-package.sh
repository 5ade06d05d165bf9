#!/usr/bin/env bash
# The release artifacts, installed for real (docs/packaging.md):
#   1. deploy/release.sh builds the tarball, the .deb, the SBOM and sha256sums.txt (profile
#      package-test: the same package, built without LTO so that CI stays in budget);
#      `sha256sum -c` passes; the tarball holds what the README promises; lintian finds no
#      error in the .deb;
#   2. a clean Debian root (debootstrap --variant=minbase bookworm; cached as a tarball under
#      $PACKAGE_TEST_ROOTFS_CACHE, made from scratch when absent): `dpkg -i` the .deb inside it
#      (chroot, private mount, PID and network namespaces, loopback only); the files land
#      where docs/packaging.md says, the unit runs /usr/bin/sockdiag_exporter, the env file
#      is a conffile; the installed binary answers /metrics on loopback with the build date of
#      SOURCE_DATE_EPOCH; `dpkg -r` leaves nothing behind but the conffile, `dpkg --purge`
#      removes that too;
#   3. the same root as a Docker image (`docker import`), the same steps inside a container
#      with `--network none`. dockerd is started by this script when none answers (its own
#      socket and data root under the temp dir, stopped by pid at the end).
# Every process started is stopped by pid; the temp roots and the image are removed.
set -euo pipefail
trap 'echo "80-package: FAIL: unexpected error (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

fail() { echo "80-package: FAIL: $*" >&2; exit 1; }
ok() { echo "80-package: ok: $*"; }
elapsed() { echo "$(($(date +%s) - started))s"; }
started=$(date +%s)

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, namespaces, dockerd)"
need_apt debootstrap debootstrap || fail "cannot install debootstrap"
need_apt lintian lintian || fail "cannot install lintian"
need_apt dockerd docker.io || fail "cannot install docker.io"
need_apt unshare util-linux || fail "cannot install util-linux"
need_apt ip iproute2 || fail "cannot install iproute2"

TMP=$(mktemp -d /var/tmp/sockdiag-package.XXXXXX)
dockerd_pid="" image="" docker_env=()
cleanup() {
  if [ -n "$image" ]; then
    env "${docker_env[@]}" docker rmi -f "$image" >/dev/null 2>&1 || true
  fi
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # Every mount this script makes lives in a namespace that is gone by now; dockerd's are
  # under its exec and data roots. Never rm -rf through a live mount.
  if findmnt -rno TARGET | grep -q "^$TMP"; then
    findmnt -rno TARGET | grep "^$TMP" | sort -r | xargs -r umount -l || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# --- 1. Artifacts ---------------------------------------------------------------------------
dist=$TMP/dist
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
build_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
deploy/release.sh --profile package-test --out "$dist" >"$TMP/release.log" 2>&1 \
  || { tail -40 "$TMP/release.log"; fail "deploy/release.sh failed"; }
ok "release.sh ($(elapsed))"
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)
deb=$dist/sockdiag-exporter_${version}-1_amd64.deb
tarball=$dist/sockdiag_exporter-$version.linux-amd64.tar.gz
for f in "$deb" "$tarball" "$dist/sockdiag_exporter-$version.cdx.json" "$dist/sha256sums.txt"; do
  [ -s "$f" ] || fail "release.sh did not write $f"
done
(cd "$dist" && sha256sum -c --strict sha256sums.txt) || fail "sha256sum -c failed"
[ "$(wc -l <"$dist/sha256sums.txt")" -eq 3 ] || fail "sha256sums.txt should list 3 files"
ok "sha256sum -c"

top=sockdiag_exporter-$version.linux-amd64
tar -tzf "$tarball" >"$TMP/tar.list"
for want in sockdiag_exporter README.md LICENSE CHANGELOG.md config.example.toml \
  systemd/sockdiag_exporter.service systemd/sockdiag_exporter.env docs/incidents.md \
  docs/packaging.md man/sockdiag_exporter.1.gz grafana/dashboards/sockdiag-overview.json \
  grafana/rules/sockdiag-alerts.yml grafana/runbooks/README.md; do
  grep -qx "$top/$want" "$TMP/tar.list" || fail "the tarball lacks $top/$want"
done
python3 - "$dist/sockdiag_exporter-$version.cdx.json" <<'PY' || fail "the SBOM is not what it should be"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX", bom.get("bomFormat")
names = {c["name"] for c in bom.get("components", [])}
missing = {"tokio", "hyper", "sockdiag-core", "rustls"} - names
assert not missing, f"linked crates missing from the SBOM: {missing}"
extra = {"proptest", "libtest-mimic", "clap_mangen"} & names
assert not extra, f"crates that are not linked in are in the SBOM: {extra}"
PY
ok "tarball and SBOM contents"

lintian --fail-on error --display-info --tag-display-limit 0 "$deb" >"$TMP/lintian.txt" 2>&1 \
  || { cat "$TMP/lintian.txt"; fail "lintian reports errors"; }
echo "80-package: lintian (warnings are explained in docs/packaging.md):"
sed 's/^/  /' "$TMP/lintian.txt"
ok "lintian: no error ($(elapsed))"

# --- 2. A clean Debian root -----------------------------------------------------------------
cache=${PACKAGE_TEST_ROOTFS_CACHE:-/var/cache/sockdiag_exporter-tests}
rootfs=$cache/bookworm-minbase.tar
if [ ! -s "$rootfs" ]; then
  # The mirror this machine's apt uses, so that a proxy or local mirror works here too.
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p; s/^deb \(http[^ ]*debian\) .*/\1/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "80-package: debootstrap bookworm from $mirror (cached in $rootfs)"
  debootstrap --variant=minbase bookworm "$TMP/bootstrap" "$mirror" >"$TMP/debootstrap.log" 2>&1 \
    || { tail -20 "$TMP/debootstrap.log"; fail "debootstrap failed"; }
  mkdir -p "$cache"
  tar -C "$TMP/bootstrap" -cf "$rootfs.tmp" . && mv "$rootfs.tmp" "$rootfs"
  rm -rf "$TMP/bootstrap"
fi

# What runs inside the root, in the chroot and in the container alike: install, inspect,
# scrape /metrics over loopback with bash's /dev/tcp (minbase has no curl), remove, purge.
mkdir -p "$TMP/pkg"
cp "$deb" "$TMP/pkg/sockdiag-exporter.deb"
cat >"$TMP/pkg/inside.sh" <<'INSIDE'
#!/bin/bash
set -euo pipefail
build_date=$1
fail() { echo "inside: FAIL: $*" >&2; exit 1; }
# Every path of the root but the kernel's, the scratch and dpkg's own records and logs.
tree() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /pkg -o -path /var/lib/dpkg -o -path /var/log -o -path /var/cache \) -prune \
    -o -print | sort
}
tree >/tmp/tree.before
dpkg -i /pkg/sockdiag-exporter.deb >/tmp/dpkg-i.log 2>&1 || { cat /tmp/dpkg-i.log; fail "dpkg -i"; }
unit=/lib/systemd/system/sockdiag_exporter.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/sockdiag_exporter.service
for f in /usr/bin/sockdiag_exporter "$unit" /etc/default/sockdiag_exporter \
  /usr/share/man/man1/sockdiag_exporter.1.gz /usr/share/doc/sockdiag-exporter/copyright \
  /usr/share/doc/sockdiag-exporter/examples/config.example.toml \
  /usr/share/doc/sockdiag-exporter/docs/incidents.md; do
  [ -e "$f" ] || fail "$f not installed"
done
grep -qx 'ExecStart=/usr/bin/sockdiag_exporter $ARGS' "$unit" || fail "$unit: ExecStart is not /usr/bin"
grep -qx /etc/default/sockdiag_exporter /var/lib/dpkg/info/sockdiag-exporter.conffiles \
  || fail "/etc/default/sockdiag_exporter is not a conffile"
version_text=$(/usr/bin/sockdiag_exporter --version)
grep -q "build date:    $build_date" <<<"$version_text" \
  || fail "--version lacks the build date $build_date: $version_text"

/usr/bin/sockdiag_exporter --web.listen-address=127.0.0.1:10120 --poll.interval=1s \
  >/tmp/exporter.log 2>&1 &
pid=$!
scrape() {
  exec 3<>/dev/tcp/127.0.0.1/10120 || return 1
  printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  cat <&3 >/tmp/metrics
  exec 3<&-
  grep -q '^sockdiag_tcp_sockets{' /tmp/metrics
}
for _ in $(seq 100); do
  scrape 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat /tmp/exporter.log; fail "the exporter exited"; }
  sleep 0.2
done
kill "$pid"
wait "$pid" || true
grep -q '^HTTP/1.[01] 200' /tmp/metrics || { head -5 /tmp/metrics; fail "/metrics did not answer 200"; }
grep -q "^sockdiag_build_info{.*build_date=\"$build_date\"" /tmp/metrics \
  || fail "sockdiag_build_info lacks build_date=\"$build_date\": $(grep build_info /tmp/metrics)"
echo "inside: /metrics answered: $(grep -c '^sockdiag_' /tmp/metrics) series"

dpkg -r sockdiag-exporter >/tmp/dpkg-r.log 2>&1 || { cat /tmp/dpkg-r.log; fail "dpkg -r"; }
# What is new since before the install: the conffile, and the systemd enablement state that
# deb-systemd-helper keeps until purge (as every Debian service package does: enabling is
# configuration). Nothing else.
left=$(comm -13 /tmp/tree.before <(tree) | grep -vxE '/etc/default/sockdiag_exporter|/etc/systemd(/system(/multi-user\.target\.wants(/sockdiag_exporter\.service)?|/sockdiag_exporter\.service)?)?|/var/lib/systemd(/deb-systemd-helper-(enabled|masked)(/.*)?)?' || true)
[ -z "$left" ] || fail "dpkg -r left files behind: $left"
[ -f /etc/default/sockdiag_exporter ] || fail "dpkg -r removed the conffile"
echo "inside: after dpkg -r, new paths: $(comm -13 /tmp/tree.before <(tree) | tr '\n' ' ')"
dpkg --purge sockdiag-exporter >/tmp/dpkg-p.log 2>&1 || { cat /tmp/dpkg-p.log; fail "dpkg --purge"; }
left=$(comm -13 /tmp/tree.before <(tree) || true)
[ -z "$left" ] || fail "dpkg --purge left files behind: $left"
echo "inside: dpkg -r left only the conffile (and systemd's enablement state); --purge left nothing"
INSIDE
chmod 0755 "$TMP/pkg/inside.sh"

root=$TMP/root
mkdir -p "$root"
tar -C "$root" -xf "$rootfs"
mkdir -p "$root/pkg"
cp "$TMP/pkg/"* "$root/pkg/"
# A private mount namespace (the /proc mounted for the root vanishes with it), a private PID
# namespace (so that /proc shows only the test's processes), a private network namespace
# with loopback up, and an empty environment: nothing of this shell (SOCKDIAG_* variables
# would be read as configuration) leaks into the clean root.
# shellcheck disable=SC2016 # $1 and $2 expand in the inner sh.
unshare --mount --pid --net --fork --mount-proc="$root/proc" \
  sh -c 'ip link set lo up && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" /pkg/inside.sh "$2"' \
  sh "$root" "$build_date" \
  >"$TMP/chroot.log" 2>&1 || { cat "$TMP/chroot.log"; fail "the package in a chroot"; }
sed 's/^/  /' "$TMP/chroot.log"
ok "chroot: dpkg -i, /metrics, dpkg -r, dpkg --purge ($(elapsed))"

# --- 3. The same root as a Docker container -------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  sock=$TMP/docker/docker.sock
  mkdir -p "$TMP/docker"
  # Its own socket and data root, no bridge and no iptables: nothing of the host changes.
  # vfs works on every backing filesystem (overlay2 does not nest in an overlay root).
  dockerd --host "unix://$sock" --data-root "$TMP/docker/data" --exec-root "$TMP/docker/exec" \
    --pidfile "$TMP/docker/docker.pid" --bridge none --iptables=false --ip6tables=false \
    --storage-driver vfs >"$TMP/docker/dockerd.log" 2>&1 &
  dockerd_pid=$!
  docker_env=("DOCKER_HOST=unix://$sock")
  for _ in $(seq 120); do
    env "${docker_env[@]}" docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$TMP/docker/dockerd.log"; fail "dockerd exited"; }
    sleep 0.5
  done
  env "${docker_env[@]}" docker info >/dev/null 2>&1 || { tail -20 "$TMP/docker/dockerd.log"; fail "dockerd did not answer"; }
fi
docker() { env "${docker_env[@]}" docker "$@"; }
image=sockdiag-package-test:$$
docker import - "$image" <"$rootfs" >/dev/null
docker run --rm --network none -v "$TMP/pkg:/pkg:ro" "$image" /pkg/inside.sh "$build_date" \
  >"$TMP/docker.log" 2>&1 || { cat "$TMP/docker.log"; fail "the package in a Docker container"; }
sed 's/^/  /' "$TMP/docker.log"
ok "docker (imported root, --network none): dpkg -i, /metrics, dpkg -r, dpkg --purge ($(elapsed))"

echo "80-package: all checks passed in $(elapsed)"
