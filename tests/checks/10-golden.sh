#!/usr/bin/env bash
# The golden exposition (a fixed snapshot touching every metric family, kept equal to the
# encoder's output by the unit test metrics::tests::golden_exposition) passes
# `promtool check metrics` with no finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
need_apt promtool prometheus
findings=$(promtool check metrics < tests/golden/metrics.prom 2>&1) || {
  echo "promtool check metrics failed on tests/golden/metrics.prom:"
  echo "$findings"
  exit 1
}
if [ -n "$findings" ]; then
  echo "promtool check metrics findings on tests/golden/metrics.prom:"
  echo "$findings"
  exit 1
fi
families=$(grep -c '^# TYPE ' tests/golden/metrics.prom)
echo "golden exposition: $families families, promtool check metrics clean"
