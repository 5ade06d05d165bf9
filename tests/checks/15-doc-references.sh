#!/usr/bin/env bash
# No file in the repository cites a document that is not in it. The release tarball and the
# Debian package ship README, CHANGELOG, docs/, grafana/ and deploy/; a citation of a file
# users do not have (a design note kept outside the repository) is a dead end for them.
# Three kinds of citation are checked in every tracked text file:
#   1. a bare upper-case document name, `NAME.md` (README.md, CHANGELOG.md): some tracked
#      file must have that name;
#   2. a repository path, `docs/x.md`, `grafana/runbooks/X.md`: it must exist from the root;
#   3. a relative Markdown link, `[text](../docs/x.md#anchor)`: it must exist from the
#      linking file's directory.
# A self-test first feeds the scanner a file with one citation of each kind that resolves
# nowhere, so that the check can fail.
set -euo pipefail
cd "$(dirname "$0")/../.."

scan() {
  # scan ROOT FILE...: print "FILE:LINE: cites MISSING" for each citation that does not
  # resolve; exit 1 when there is one.
  python3 - "$@" <<'PY'
import os, re, sys

root, files = sys.argv[1], sys.argv[2:]
names = {os.path.basename(f) for f in files}
bare = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_]*\.md)\b")
path = re.compile(r"(?<![\w/.-])((?:docs|grafana|deploy|tests|crates|src|benches|fuzz)/[\w./-]*?\.md)\b")
link = re.compile(r"\]\(([^)\s#]+\.md)(?:#[^)]*)?\)")
# Dead on purpose: a linter's self-test that must see a runbook link fail.
ALLOWED = {("grafana/tools/lint-dashboards.py", "grafana/runbooks/Nope.md")}
bad = 0
for f in files:
    try:
        text = open(os.path.join(root, f), encoding="utf-8").read()
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        continue
    for n, line in enumerate(text.splitlines(), 1):
        missing = [m for m in bare.findall(line) if m not in names]
        missing += [m for m in path.findall(line) if not os.path.isfile(os.path.join(root, m))]
        for m in link.findall(line):
            if "://" in m or m.startswith("/"):
                continue
            if not os.path.isfile(os.path.normpath(os.path.join(root, os.path.dirname(f), m))):
                missing.append(m)
        for m in missing:
            if (f, m) in ALLOWED:
                continue
            print(f"{f}:{n}: cites {m}, which is not in the repository")
            bad = 1
sys.exit(bad)
PY
}

# Self-test: three dead citations, one of each kind, in a scratch tree.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs"
printf 'See NOTES.md #4, docs/gone.md and [this](../grafana/runbooks/Gone.md#x).\n' >"$tmp/docs/a.md"
if found=$(scan "$tmp" docs/a.md); then
  echo "FAIL: the scanner found nothing in a file with three dead citations"
  exit 1
fi
[ "$(wc -l <<<"$found")" -eq 3 ] || { echo "FAIL: the self-test expected 3 findings:"; echo "$found"; exit 1; }

# Every tracked file but binary data, lock files and this script (its examples are dead on
# purpose).
mapfile -t files < <(git ls-files | grep -vE '\.(png|jpg|lock)$|^tests/fixtures/|package-lock\.json$|^tests/checks/15-doc-references\.sh$')
if ! scan . "${files[@]}"; then
  echo "FAIL: the citations above point at documents the repository does not have"
  echo "(the incident notes are docs/incidents.md; the design is docs/architecture.md)"
  exit 1
fi
echo "doc references: ${#files[@]} files, every cited document exists"
