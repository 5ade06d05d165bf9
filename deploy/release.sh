#!/usr/bin/env bash
# Builds the release artifacts into dist/ (docs/packaging.md describes each):
#   sockdiag_exporter-VERSION.linux-ARCH.tar.gz   binary, README, LICENSE, CHANGELOG,
#       config.example.toml, the systemd unit and env file, docs/, man pages, and the built
#       dashboards, rules and runbooks (grafana/);
#   sockdiag-exporter_VERSION-1_ARCH.deb          the Debian package (cargo-deb);
#   sockdiag_exporter-VERSION.cdx.json            CycloneDX SBOM of the crates linked in;
#   sha256sums.txt                                `sha256sum -c sha256sums.txt` checks them.
#
# Usage: deploy/release.sh [--profile PROFILE] [--target TRIPLE] [--out DIR]
#   --profile  cargo profile (default release; tests/checks/80-package.sh uses package-test,
#              a faster build of the same package)
#   --target   target triple for a cross build (default: the host); see docs/packaging.md
#   --out      output directory (default dist, gitignored)
#
# Reproducible: SOURCE_DATE_EPOCH (default: the time of the last commit) becomes the build
# date in the binary and every file time in the tarball and the package. Installs
# cargo-deb and cargo-cyclonedx from crates.io (cargo install --locked) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

profile=release target="" out=dist
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--profile PROFILE] [--target TRIPLE] [--out DIR]" >&2; exit 2 ;;
  esac
done

log() { echo "release: $*" >&2; }

need_cargo_tool() {
  # need_cargo_tool SUBCOMMAND CRATE: cargo install CRATE unless `cargo SUBCOMMAND` exists.
  cargo "$1" --version >/dev/null 2>&1 && return 0
  log "installing $2 (cargo install --locked --debug)"
  # --debug: a tool run a few times per release gains nothing from optimization, and an
  # unoptimized build of it takes about half the time on a fresh CI machine's 2 cores.
  cargo install --locked --debug --quiet "$2"
}
need_cargo_tool deb cargo-deb
need_cargo_tool cyclonedx cargo-cyclonedx

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { log "no version in Cargo.toml"; exit 1; }
host=$(rustc -vV | sed -n 's/^host: //p')
triple=${target:-$host}
case $triple in
  x86_64-*) arch=amd64 ;;
  aarch64-*) arch=arm64 ;;
  *) log "no Debian architecture known for $triple"; exit 1 ;;
esac
target_dir=${CARGO_TARGET_DIR:-$repo/target}
# cargo puts the dev profile in debug/, every other one under its own name; a cross build
# adds the triple.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
bin_dir=$target_dir/${target:+$target/}$profile_dir
target_args=()
[ -n "$target" ] && target_args=(--target "$target")

# --- Generated inputs of the package (Cargo.toml [package.metadata.deb] names them) ---------
mkdir -p target/deb-units target/deb-man
# The one source of the unit is deploy/systemd (a manual install to /usr/local/bin); the
# package's copy runs /usr/bin/sockdiag_exporter and drops the manual install steps.
# shellcheck disable=SC2016 # `systemctl edit` and $ARGS are literal text of the unit.
sed -e 's|^ExecStart=/usr/local/bin/sockdiag_exporter |ExecStart=/usr/bin/sockdiag_exporter |' \
  -e '/^# Install:$/,/^#$/c\# Installed by the sockdiag-exporter Debian package: edit\n# /etc/default/sockdiag_exporter, or add a drop-in with `systemctl edit sockdiag_exporter`.\n#' \
  deploy/systemd/sockdiag_exporter.service >target/deb-units/sockdiag_exporter.service
# shellcheck disable=SC2016 # $ARGS is literal: systemd expands it.
grep -qx 'ExecStart=/usr/bin/sockdiag_exporter $ARGS' target/deb-units/sockdiag_exporter.service \
  || { log "deploy/systemd/sockdiag_exporter.service: ExecStart no longer matches what release.sh rewrites"; exit 1; }
debian_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
maintainer=$(sed -n 's/^maintainer *= *"\(.*\)"$/\1/p' Cargo.toml | head -1)
cat >target/deb-changelog <<EOF
sockdiag-exporter ($version-1) unstable; urgency=medium

  * Upstream release $version; its changes are in
    /usr/share/doc/sockdiag-exporter/CHANGELOG.md.gz.

 -- $maintainer  $debian_date
EOF

log "building $version ($profile, $triple, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
cargo build --locked --profile "$profile" "${target_args[@]}" -p sockdiag-exporter --bin sockdiag_exporter
# The man pages come from the binary's own clap definitions; the generator runs on the host.
cargo run --locked --quiet --profile "$profile" -p xtask -- man target/deb-man
for page in target/deb-man/*.1; do
  touch -d "@$SOURCE_DATE_EPOCH" "$page"
  gzip -9nf "$page"
done

rm -rf "$out"
mkdir -p "$out"

# --- SBOM: the crates linked into the binary (no dev or build dependencies) ------------------
# cargo-cyclonedx writes one PACKAGE.cdx.json beside each workspace member's Cargo.toml;
# the daemon's is the one that describes the binary.
cargo cyclonedx --format json --all --no-build-deps --target "$triple" --spec-version 1.5 \
  --manifest-path Cargo.toml >&2
mv sockdiag-exporter.cdx.json "$out/sockdiag_exporter-$version.cdx.json"
rm -f crates/core/sockdiag-core.cdx.json crates/xtask/xtask.cdx.json
# Debian wants upstream's changelog as changelog.gz; the SBOM ships in the package too.
mkdir -p target/deb-doc
gzip -9nc CHANGELOG.md >target/deb-doc/changelog.gz
gzip -9nc "$out/sockdiag_exporter-$version.cdx.json" >target/deb-doc/sbom.cdx.json.gz

cargo deb --locked --no-build --profile "$profile" "${target_args[@]}" -p sockdiag-exporter \
  --output "$out/sockdiag-exporter_${version}-1_$arch.deb" >&2

# --- Tarball --------------------------------------------------------------------------------
name=sockdiag_exporter-$version.linux-$arch
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
mkdir -p "$dir/systemd" "$dir/man" "$dir/grafana"
install -m 0755 "$bin_dir/sockdiag_exporter" "$dir/"
install -m 0644 README.md LICENSE CHANGELOG.md config.example.toml "$dir/"
install -m 0644 deploy/systemd/sockdiag_exporter.service deploy/systemd/sockdiag_exporter.env \
  deploy/systemd/web-config.conf "$dir/systemd/"
install -m 0644 target/deb-man/*.1.gz "$dir/man/"
cp -r docs "$dir/docs"
for part in dashboards rules runbooks; do
  cp -r "grafana/$part" "$dir/grafana/$part"
done
find "$dir" -type d -exec chmod 0755 {} +
find "$dir" -type f ! -name sockdiag_exporter -exec chmod 0644 {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$stage" -cf - "$name" | gzip -9n >"$out/$name.tar.gz"

(cd "$out" && sha256sum -- *.tar.gz *.deb *.cdx.json >sha256sums.txt)
log "wrote $out:"
ls -l "$out" >&2
