#!/usr/bin/env python3
"""Check the inhibition rules of grafana/alertmanager/alertmanager.yml on a live Alertmanager.

    python3 grafana/tools/am-inhibition-test.py http://127.0.0.1:PORT

tests/checks/20-rules.sh starts a real Alertmanager on 127.0.0.1 with a copy of the example
configuration whose receivers have no integrations (nothing is ever sent anywhere), then runs
this. It posts a set of alerts through the v2 API and reads back each one's inhibitedBy:

  critical SockdiagCloseWaitGrowing  host A ns a1 -> not inhibited (a page is never inhibited)
  warning  SockdiagCloseWaitStale    host A ns a1 -> inhibited by the critical (same job,
                                                     instance, netns)
  warning  SockdiagTimeWaitNearMax.. host A ns a1 -> inhibited too (same target, other alert)
  warning  SockdiagCloseWaitStale    host A ns b2 -> not inhibited (other network namespace)
  warning  SockdiagPollErrors        host A       -> not inhibited (host level, no netns)
  warning  SockdiagCloseWaitStale    host B ns a1 -> not inhibited (other instance)
  warning  SockdiagCloseWaitStale    host A ns a1, other job -> not inhibited
  critical/warning pair without netns (an exporter before netns support), host C
                                                  -> the warning is inhibited
  info     SockdiagAttributionDegraded host A -> not inhibited (only warnings are)
  warning  OtherTeamAlert            host A   -> not inhibited (only Sockdiag alerts are)
Exit 1 with a line per mismatch. Standard library only; talks to the given URL only.
"""
import json
import sys
import time
import urllib.request

A, B, C = "host-a:10120", "host-b:10120", "host-c:10120"
LEAK = {"direction": "outbound", "port": "3306", "process": "api"}
CASES = [
    # labels, expected inhibited
    ({"alertname": "SockdiagCloseWaitGrowing", "severity": "critical", "job": "sockdiag", "instance": A,
      "netns": "a1", **LEAK}, False),
    ({"alertname": "SockdiagCloseWaitStale", "severity": "warning", "job": "sockdiag", "instance": A,
      "netns": "a1", **LEAK}, True),
    ({"alertname": "SockdiagTimeWaitNearMaxBuckets", "severity": "warning", "job": "sockdiag", "instance": A,
      "netns": "a1"}, True),
    ({"alertname": "SockdiagCloseWaitStale", "severity": "warning", "job": "sockdiag", "instance": A,
      "netns": "b2", **LEAK}, False),
    ({"alertname": "SockdiagPollErrors", "severity": "warning", "job": "sockdiag", "instance": A,
      "stage": "dump"}, False),
    ({"alertname": "SockdiagCloseWaitStale", "severity": "warning", "job": "sockdiag", "instance": B,
      "netns": "a1", **LEAK}, False),
    ({"alertname": "SockdiagCloseWaitStale", "severity": "warning", "job": "sockdiag-canary", "instance": A,
      "netns": "a1", **LEAK}, False),
    ({"alertname": "SockdiagAttributionDegraded", "severity": "info", "job": "sockdiag", "instance": A,
      "netns": "a1"}, False),
    ({"alertname": "OtherTeamAlert", "severity": "warning", "job": "sockdiag", "instance": A, "netns": "a1"}, False),
    ({"alertname": "SockdiagCloseWaitGrowing", "severity": "critical", "job": "sockdiag", "instance": C, **LEAK}, False),
    ({"alertname": "SockdiagCloseWaitStale", "severity": "warning", "job": "sockdiag", "instance": C, **LEAK}, True),
]


def call(base, path, body=None):
    req = urllib.request.Request(base.rstrip("/") + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def key(labels):
    return tuple(sorted(labels.items()))


def main():
    base = sys.argv[1]
    call(base, "/api/v2/alerts", [{"labels": labels} for labels, _ in CASES])
    want = {key(labels): inhibited for labels, inhibited in CASES}
    got = {}
    deadline = time.time() + 15
    while time.time() < deadline:
        got = {}
        for a in call(base, "/api/v2/alerts"):
            got[key(a["labels"])] = bool(a["status"]["inhibitedBy"])
        if got == want:
            break
        time.sleep(0.3)
    bad = 0
    for labels, inhibited in CASES:
        k = key(labels)
        state = "missing" if k not in got else ("inhibited" if got[k] else "not inhibited")
        ok = k in got and got[k] == inhibited
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {labels['severity']:8} {labels['alertname']} "
              f"job={labels['job']} instance={labels['instance']} netns={labels.get('netns', '')}: {state}, "
              f"expected {'inhibited' if inhibited else 'not inhibited'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
