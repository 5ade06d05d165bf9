#!/usr/bin/env bash
# Build the sockdiag mixin into the files the repository ships (what non-jsonnet users use):
#   grafana/rules/sockdiag-recording.yml, grafana/rules/sockdiag-alerts.yml
#   grafana/dashboards/<uid>.json
#   deploy/kubernetes/prometheusrule.yaml (through deploy/kubernetes/generate-prometheusrule.py)
#
#   grafana/mixin/build.sh                     # rewrite the committed files
#   grafana/mixin/build.sh --out DIR           # write DIR/rules/*.yml and DIR/dashboards/*.json
#   grafana/mixin/build.sh --config FILE --out DIR
#                                              # FILE: a jsonnet object merged into _config
#
# Needs jsonnet (Debian package `jsonnet`) and python3 (the dashboards' JSON is re-indented
# with Python's json module, so that 0.9 is written 0.9 and the diff stays readable).
# tests/checks/20-rules.sh and 25-dashboards.sh fail when the committed files differ from a
# fresh build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="" config=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    *) echo "usage: $0 [--config FILE] [--out DIR]" >&2; exit 2 ;;
  esac
done
command -v jsonnet >/dev/null || { echo "build.sh: jsonnet not found (apt-get install jsonnet)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rules" "$tmp/dashboards"
args=(-J "$here" -m "$tmp")
[ -n "$config" ] && args+=(--tla-code-file "config=$config")
jsonnet "${args[@]}" -S --tla-str part=rules "$here/build.jsonnet" >/dev/null
jsonnet "${args[@]}" --tla-str part=dashboards "$here/build.jsonnet" >/dev/null
python3 - "$tmp"/dashboards/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")
PY

if [ -n "$out" ]; then
  mkdir -p "$out/rules" "$out/dashboards"
  cp "$tmp"/rules/*.yml "$out/rules/"
  cp "$tmp"/dashboards/*.json "$out/dashboards/"
  echo "build.sh: wrote $(ls "$tmp"/rules "$tmp"/dashboards | grep -c '\.') files to $out" >&2
else
  # The shipped set is exactly the mixin's: a dashboard the mixin no longer makes is removed.
  rm -f "$repo"/grafana/rules/*.yml "$repo"/grafana/dashboards/*.json
  cp "$tmp"/rules/*.yml "$repo/grafana/rules/"
  cp "$tmp"/dashboards/*.json "$repo/grafana/dashboards/"
  python3 "$repo/deploy/kubernetes/generate-prometheusrule.py"
  echo "build.sh: rewrote grafana/rules, grafana/dashboards and deploy/kubernetes/prometheusrule.yaml" >&2
fi
