#!/usr/bin/env python3
"""Check a live exporter's exposition against the metric contract (tests/checks/30-e2e.sh).

    python3 tests/e2e/contract.py METRICS_FILE      # text exposition (curl /metrics)

grafana/tools/sockdiag-metrics.txt lists every metric the rules and dashboards use. A name
without a mark must be exposed (else a query silently returns nothing); a name marked
`pending` must not be (the exporter gained it: drop the mark, so that the end-to-end test
expects its data). Reuses lint-dashboards.py's contract(). Standard library only.
"""
import importlib.util
import os
import re
import sys

# Families that exist only when such sockets exist, absent from the end-to-end scenario.
SCENARIO_ABSENT = {
    "sockdiag_tcp_unaccepted_sockets": "no connection waits in an accept queue",
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    spec = importlib.util.spec_from_file_location("lint_dashboards", os.path.join(REPO, "grafana/tools/lint-dashboards.py"))
    lint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lint)
    with open(sys.argv[1], encoding="utf-8") as f:
        exposed = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", f.read(), re.M))
    bad = 0
    contract = lint.contract()
    for name, marks in sorted(contract.items()):
        if "pending" in marks and name in exposed:
            print(f"FAIL {name} is exposed now: remove its `pending` mark in grafana/tools/sockdiag-metrics.txt")
            bad = 1
        elif name in SCENARIO_ABSENT:
            print(f"not exposed in this scenario, as expected: {name} ({SCENARIO_ABSENT[name]})")
        elif "pending" not in marks and name not in exposed:
            print(f"FAIL {name} is in the metric contract but not exposed by the exporter")
            bad = 1
    pending = sorted(n for n, m in contract.items() if "pending" in m)
    print(f"contract: {len(contract) - len(pending)} names exposed as listed; "
          f"{len(pending)} pending, not exposed yet: {', '.join(pending)}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
