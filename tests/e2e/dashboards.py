#!/usr/bin/env python3
"""Run every dashboard query against the end-to-end test's Prometheus (tests/checks/30-e2e.sh).

    python3 tests/e2e/dashboards.py --prometheus http://127.0.0.1:9090 --time UNIX \
        --job sockdiag --instance 127.0.0.1:10120 --process leaky-app --port 3306 \
        --listener-process fake-mysqld [--cluster VALUE] [--uid-prefix sockdiag-] \
        grafana/dashboards/*.json

Reuses grafana/tools/lint-dashboards.py (imported, not copied): its panel walk
(flat_panels), variable queries (var_query/var_promql) and Grafana variable substitution
(substitute, SUBSTITUTIONS), with $job, $instance, $process and $port set to the scenario's
values, $cluster to --cluster (default ".*", Grafana's All) and $netns to --netns (the
application's namespaces, here "monitoring|application": the exporter sees every namespace on the machine, and other
namespaces' leaks must not crowd the top-10 panels); $__rate_interval and the others keep lint-dashboards'
values. Dashboards are keyed by their uid without --uid-prefix (the mixin's
dashboardUidPrefix), so a non-default build is checked by the same table.
Every panel target and every query variable is sent to /api/v1/query at --time (a moment
when the leak and the page were live):
  * any answer other than HTTP 200 fails (400 = the query does not parse);
  * each entry of MUST_FILL below (what the CLOSE_WAIT leak scenario produces) must exist in
    the dashboards and return at least one series, with the labels/values listed;
  * EXPECTED_EMPTY lists what this scenario cannot fill and why; a query that reads only
    families marked `pending` in grafana/tools/sockdiag-metrics.txt (directly or through a
    recording rule named after one) may be empty too: the exporter does not emit them yet;
    any other empty query is reported as a warning (classify it).
Standard library only.
"""
import argparse
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (dashboard uid without the prefix, panel title or "variable <name>", refId or None for
# variables) ->
#   {"labels": {...}} at least one series carries these labels (values are format keys:
#   {process}, {port}, {listener}, {instance} are the scenario's),
#   {"min": x} some series has a value >= x, {"max": x} every series has a value <= x.
LEAK = {"process": "{process}", "port": "{port}", "direction": "outbound"}
MUST_FILL = {
    # ---- overview: state counters and the leak, by process and port
    ("overview", "ESTABLISHED", "A"): {},
    ("overview", "CLOSE_WAIT", "A"): {"min": 50},
    ("overview", "TIME_WAIT", "A"): {"min": 1},
    ("overview", "Listening sockets", "A"): {"min": 2},
    ("overview", "Oldest CLOSE_WAIT", "A"): {"min": 5},
    ("overview", "Last successful poll", "A"): {"max": 10},
    ("overview", "TCP sockets by state", "A"): {"labels": {"state": "close_wait"}},
    ("overview", "CLOSE_WAIT by process and port", "A"): {"labels": LEAK, "min": 50},
    ("overview", "CLOSE_WAIT growth per hour", "A"): {"labels": LEAK, "min": 1},
    ("overview", "Oldest CLOSE_WAIT age", "A"): {"labels": LEAK, "min": 5},
    ("overview", "Stale CLOSE_WAIT sockets", "A"): {"labels": LEAK, "min": 1},
    ("overview", "Top CLOSE_WAIT now", "A"): {"labels": LEAK, "min": 50},
    # "which container": the leak's series stay when sockdiag_netns_info has no match
    ("overview", "CLOSE_WAIT: which container", "A"): {"labels": LEAK, "min": 50},
    # the UDP receiver flooded beside the leak (udp-sink :8125, 200 datagrams/s)
    ("overview", "UDP receivers: which container", "A"): {"labels": {"process": "udp-sink", "port": "8125"}, "min": 1},
    ("overview", "UDP sockets", "A"): {"min": 2},
    ("overview", "Keepalive and FIN timers", "A"): {},
    ("overview", "Keepalive and FIN timers", "B"): {},
    ("overview", "Keepalive and FIN timers", "C"): {},
    ("overview", "Keepalive probes", "A"): {},
    # ---- the server's listener on the leaked port
    ("overview", "Accept queue fill (waiting / backlog)", "A"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Accept queue peak fill", "A"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Listeners now", "A"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Listeners now", "B"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Listeners now", "C"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Accept queues: which container", "A"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("overview", "Listen overflows and drops", "A"): {},
    ("overview", "Listen overflows and drops", "B"): {},
    ("overview", "Backlog limits", "A"): {},
    ("overview", "Backlog limits", "B"): {},
    # ---- TIME_WAIT (the leaker's healthy connections close first) and ephemeral ports
    ("overview", "TIME_WAIT against tcp_max_tw_buckets", "A"): {"min": 1},
    ("overview", "TIME_WAIT against tcp_max_tw_buckets", "B"): {},
    ("overview", "TIME_WAIT by port", "A"): {"labels": {"direction": "outbound", "port": "{port}"}},
    ("overview", "Ephemeral ports used per destination (share of range)", "A"): {"labels": {"remote_port": "{port}"}},
    ("overview", "Ephemeral ports used per destination", "A"): {"labels": {"remote_port": "{port}"}, "min": 50},
    ("overview", "Ephemeral ports used per destination", "B"): {},
    ("overview", "TIME_WAIT sysctls", "A"): {},
    ("overview", "TIME_WAIT sysctls", "B"): {},
    ("overview", "TIME_WAIT sysctls", "C"): {},
    ("overview", "TIME_WAIT sysctls", "D"): {},
    ("overview", "TIME_WAIT bucket overflows", "A"): {},
    ("overview", "TIME_WAIT: which container", "A"): {"labels": {"direction": "outbound", "port": "{port}"}},
    # ---- peers and churn
    ("overview", "Top peers", "A"): {"labels": {"remote_address": "127.0.0.1"}},
    ("overview", "Peers by state now", "A"): {"labels": {"remote_address": "127.0.0.1", "state": "close_wait"}},
    ("overview", "Connections opened per second", "A"): {"min": 0.5},
    ("overview", "Connections opened per second", "B"): {"min": 0.5},
    ("overview", "Connections aborted per second", "A"): {},
    ("overview", "Connections aborted per second", "B"): {},
    ("overview", "Connection churn: which container", "A"): {"min": 0.5},
    # ---- the unread reply sitting in every leaked socket
    ("overview", "Unread bytes (receive queues)", "A"): {"labels": LEAK, "min": 1},
    # ---- exporter health
    ("overview", "Poll duration", "A"): {},
    ("overview", "Poll errors by stage", "A"): {"max": 0},
    ("overview", "Time since last successful poll", "A"): {"max": 10},
    ("overview", "Scrape status", "A"): {"labels": {"instance": "{instance}"}, "min": 1},
    ("overview", "Sockets scanned per poll", "A"): {"min": 50},
    ("overview", "Attribution and folding", "A"): {},
    ("overview", "Attribution and folding", "B"): {},
    ("overview", "Exporter build", "A"): {},
    ("overview", "Firing sockdiag alerts", "A"): {"labels": dict(LEAK, alertname="SockdiagCloseWaitGrowing", severity="critical")},
    # ---- overview variables
    ("overview", "variable cluster", None): {},
    ("overview", "variable netns", None): {},
    ("overview", "variable job", None): {"labels": {"job": "{job}"}},
    ("overview", "variable instance", None): {"labels": {"instance": "{instance}"}},
    ("overview", "variable process", None): {"labels": {"process": "{process}"}},
    ("overview", "variable port", None): {"labels": {"port": "{port}"}},
    # ---- fleet
    ("fleet", "Hosts reporting", "A"): {"min": 1},
    ("fleet", "Hosts down", "A"): {"max": 0},
    ("fleet", "Hosts with stale polls", "A"): {"max": 0},
    ("fleet", "Critical sockdiag alerts", "A"): {"min": 1},
    ("fleet", "Warning sockdiag alerts", "A"): {},
    ("fleet", "CLOSE_WAIT in the fleet", "A"): {"min": 50},
    ("fleet", "Sockets by state across the fleet", "A"): {"labels": {"state": "close_wait"}},
    ("fleet", "Hosts and namespaces now", "A"): {},
    ("fleet", "Hosts and namespaces now", "B"): {"min": 50},
    ("fleet", "Hosts and namespaces now", "C"): {"min": 1},
    ("fleet", "Hosts and namespaces now", "D"): {},
    ("fleet", "Hosts and namespaces now", "E"): {},
    ("fleet", "Hosts and namespaces now", "F"): {},
    ("fleet", "Hosts and namespaces now", "G"): {},
    ("fleet", "Top 10 namespaces by CLOSE_WAIT", "A"): {"labels": {"instance": "{instance}"}},
    ("fleet", "Top 10 namespaces by CLOSE_WAIT growth", "A"): {"labels": {"instance": "{instance}"}, "min": 1},
    ("fleet", "Top 10 process/port by CLOSE_WAIT", "A"): {"labels": LEAK, "min": 50},
    ("fleet", "Top 10 process/port by stale CLOSE_WAIT", "A"): {"labels": LEAK, "min": 1},
    ("fleet", "Top 10 containers by CLOSE_WAIT", "A"): {"labels": {"instance": "{instance}"}, "min": 50},
    ("fleet", "Top 10 listeners by peak fill", "A"): {"labels": {"process": "{listener}", "port": "{port}"}},
    ("fleet", "Top 10 destinations by ephemeral port use", "A"): {"labels": {"remote_port": "{port}"}},
    ("fleet", "Top 10 namespaces by TIME_WAIT / tcp_max_tw_buckets", "A"): {},
    ("fleet", "Top 10 namespaces by connection churn", "A"): {},
    ("fleet", "Slowest polls", "A"): {},
    ("fleet", "variable cluster", None): {},
    ("fleet", "variable job", None): {"labels": {"job": "{job}"}},
    ("fleet", "variable instance", None): {"labels": {"instance": "{instance}"}},
    ("fleet", "variable netns", None): {},
}
# What this scenario (one CLOSE_WAIT leak, a healthy server) cannot fill, and why.
EXPECTED_EMPTY = {
    # The scenario's $process and $port are the leaker's (leaky-app, 3306): the dropping UDP
    # receiver (udp-sink :8125) is outside that selection; its page is asserted instead.
    ("overview", "UDP datagrams dropped", "A"): "$process/$port select the leaker, not the UDP sink",
    ("overview", "UDP receive queue fill", "A"): "$process/$port select the leaker, not the UDP sink",
    ("overview", "Never accepted sockets", "A"): "no connection is left in an accept queue",
    ("overview", "Unsent bytes (send queues)", "A"): "nothing is left unsent (series may exist with 0)",
    ("fleet", "Hosts and namespaces now", "H"): "no never-accepted CLOSE_WAIT",
    ("fleet", "Namespaces with listen drops", "A"): "> 0 filter: no listen drops",
    ("fleet", "Never-accepted CLOSE_WAIT by namespace", "A"): "> 0 filter: nothing never accepted",
    ("fleet", "Poll errors by host", "A"): "> 0 filter: no poll errors",
    ("fleet", "Unattributed share by namespace", "A"): "> 0 filter: every socket attributed",
    ("overview", "Network namespaces not sampled", "A"): "nothing is skipped here (the series exist with 0: a > 0 filter)",
}


def load_lint():
    path = os.path.join(REPO, "grafana/tools/lint-dashboards.py")
    spec = importlib.util.spec_from_file_location("lint_dashboards", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pending_only(lint, expr, pending):
    """The pending families EXPR reads, if it reads nothing else (else an empty list)."""
    names = [name for name, _ in lint.check_expr(expr, "", lint.Findings(), require_scope=False) if name]
    hits = []
    for name in names:
        metric = name.split(":")[1] if name.count(":") == 2 else name  # level:metric:ops
        family = next((p for p in pending if metric == p or metric.startswith(p + "_")), None)
        if family is None:
            return []
        hits.append(family)
    return sorted(set(hits))


def queries(lint, path, d, uid_prefix):
    """(key, expr) for every panel target and query variable of dashboard D."""
    uid = d.get("uid") or os.path.splitext(os.path.basename(path))[0]
    if uid.startswith(uid_prefix):
        uid = uid[len(uid_prefix):]
    for p in lint.flat_panels(d):
        if p.get("type") == "row":
            continue
        for t in p.get("targets") or []:
            if (t.get("expr") or "").strip():
                yield (uid, p.get("title"), t.get("refId")), t["expr"]
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            promql = lint.var_promql(lint.var_query(v))
            if promql:
                yield (uid, f"variable {v['name']}", None), promql


def query(base, expr, at):
    data = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}).encode()
    req = urllib.request.Request(base.rstrip("/") + "/api/v1/query", data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r), ""
    except urllib.error.HTTPError as e:
        try:
            err = json.load(e).get("error", "")
        except Exception:
            err = ""
        return e.code, None, err


def show(key):
    uid, title, ref = key
    return f"{uid} / {title}" + (f" [{ref}]" if ref else "")


def check(expect, result, fmt):
    """Problems with RESULT (a Prometheus vector/scalar) against EXPECT, [] if fine."""
    problems = []
    if not result:
        return ["empty result"]
    values = []
    for s in result if isinstance(result, list) else [{"metric": {}, "value": result}]:
        try:
            values.append(float(s["value"][1]))
        except (KeyError, ValueError, TypeError):
            pass
    if "labels" in expect:
        want = {k: v.format(**fmt) for k, v in expect["labels"].items()}
        if not any(all(s.get("metric", {}).get(k) == v for k, v in want.items()) for s in result):
            got = [s.get("metric") for s in result][:5]
            problems.append(f"no series with {want}; got {got}")
    if "min" in expect and not any(v >= expect["min"] for v in values):
        problems.append(f"no value >= {expect['min']}; got {values[:5]}")
    if "max" in expect and not all(v <= expect["max"] for v in values):
        problems.append(f"a value > {expect['max']}; got {values[:5]}")
    return problems


def main():
    ap = argparse.ArgumentParser(description="Run the dashboards' queries against the e2e Prometheus.")
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--time", type=float, required=True, help="evaluation time (unix seconds)")
    ap.add_argument("--job", required=True)
    ap.add_argument("--instance", required=True)
    ap.add_argument("--process", required=True, help="the leaking process (comm)")
    ap.add_argument("--port", required=True, help="the leaked port")
    ap.add_argument("--listener-process", required=True, help="the server listening on --port")
    ap.add_argument("--cluster", default=".*", help="value of $cluster (default: All, .*)")
    ap.add_argument("--netns", default=".*", help="value of $netns (default: All, .*)")
    ap.add_argument("--uid-prefix", default="sockdiag-", help="the mixin's dashboardUidPrefix")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    lint = load_lint()
    lint.SUBSTITUTIONS.update({"job": args.job, "instance": args.instance,
                               "process": args.process, "port": args.port,
                               "cluster": args.cluster, "netns": args.netns})
    pending = {name for name, marks in lint.contract().items() if "pending" in marks}
    fmt = {"job": args.job, "instance": args.instance, "process": args.process,
           "port": args.port, "listener": args.listener_process}
    failures, empty, filled, seen = [], [], 0, set()
    all_queries = []
    for path in args.files:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        all_queries += list(queries(lint, path, d, args.uid_prefix))
    for key, expr in all_queries:
        seen.add(key)
        q = lint.substitute(expr)
        if "$" in q:
            failures.append(f"{show(key)}: Grafana variable left after substitution: {q}")
            continue
        status, body, err = query(args.prometheus, q, args.time)
        if status != 200:
            failures.append(f"{show(key)}: HTTP {status} ({err}) for: {q}")
            continue
        data = body.get("data", {})
        result = data.get("result")
        if data.get("resultType") == "scalar":
            result = result if result else []
        if key in MUST_FILL:
            problems = check(MUST_FILL[key], result, fmt)
            if problems:
                failures.append(f"{show(key)}: {'; '.join(problems)}: {q}")
            else:
                filled += 1
        elif not result:
            empty.append((key, expr))
    for key in MUST_FILL:
        if key not in seen:
            failures.append(f"{show(key)}: not found in the dashboards (renamed or removed? update MUST_FILL "
                            "in tests/e2e/dashboards.py)")
    print(f"dashboards: {len(all_queries)} queries (panels and variables) sent to {args.prometheus} at "
          f"t={args.time:.0f}; all answered 200" if not any("HTTP" in f for f in failures) else
          f"dashboards: {len(all_queries)} queries sent to {args.prometheus}")
    print(f"dashboards: {filled} of {len(MUST_FILL)} queries the scenario must fill returned the expected data")
    for key, expr in empty:
        why = EXPECTED_EMPTY.get(key)
        families = pending_only(lint, expr, pending)
        if families:
            print(f"  empty, as expected: {show(key)} (pending, not emitted yet: {', '.join(families)})")
        elif why:
            print(f"  empty, as expected: {show(key)} ({why})")
        else:
            print(f"  WARN empty and not classified: {show(key)} (add it to MUST_FILL or EXPECTED_EMPTY)")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
