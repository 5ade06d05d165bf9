#!/usr/bin/env python3
"""Lint the sockdiag Grafana dashboards and (optionally) have a real Prometheus parse every query.

    python3 grafana/tools/lint-dashboards.py grafana/dashboards/*.json
    python3 grafana/tools/lint-dashboards.py --prometheus http://127.0.0.1:PORT grafana/dashboards/*.json
    python3 grafana/tools/lint-dashboards.py --prometheus URL --list-empty grafana/dashboards/*.json
    python3 grafana/tools/lint-dashboards.py --self-test grafana/dashboards/*.json

Lint rules (the project's dashboard conventions, after grafana/dashboard-linter):
  dashboard  stable uid equal to the file name, editable false, schemaVersion >= 36, title,
             description, tags; dashboard links to /d/<uid> point at a dashboard in the set
  variables  exactly one datasource variable, named `datasource` (type prometheus); `cluster`,
             `job` and `instance` query variables using it, multi-select, include All (allValue
             ".*" for cluster, ".+" for job and instance), refresh 2 (on time range change);
             every query variable uses ${datasource} and refresh 2, and its label_values()
             selector is scoped by the cluster (below the cluster variable), job (below job)
             and instance (below instance) variables; every $variable used in a query is
             defined
  panels     unique ids, gridPos inside 24 columns and not overlapping; every non-row panel has
             datasource ${datasource}, a title, a description, a unit, at least one query, every
             query with datasource ${datasource}, a unique refId and an expression; at least one
             link, and links into the repository point at files that exist (runbooks)
  queries    every selector names a known metric (grafana/tools/sockdiag-metrics.txt, a
             recording rule of grafana/rules/, up or ALERTS) and carries job=~"$job",
             instance=~"$instance" and <cluster label>=~"$cluster" (the label the cluster
             variable lists, _config.clusterLabel of the mixin); rate/irate/increase
             use [$__rate_interval]; *_total counters only inside rate/irate/increase
With --prometheus, every panel and variable query (Grafana variables replaced by concrete
values, e.g. $__rate_interval -> 1m, $job -> (sockdiag|sockdiag-exporter)) is sent to
URL/api/v1/query: any non-200 answer is a failure (HTTP 400 = does not parse).
--list-empty prints the queries that returned no data (for the end-to-end test, where every
scenario should produce data). Exit 1 on any finding. Standard library only.
"""
import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

DS = {"type": "prometheus", "uid": "${datasource}"}
REPO_URL = "https://github.com/sockdiag/sockdiag_exporter/blob/main/"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE_FUNCS = {"rate", "irate", "increase"}
AGG_OPS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
           "bottomk", "topk", "quantile"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "atan2", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                "__range_ms", "__from", "__to", "__dashboard", "__org", "__user"}
# Concrete values for the Prometheus check. Multi-value variables are formatted the way
# Grafana formats them for a regex matcher: (a|b).
SUBSTITUTIONS = {
    "__rate_interval": "1m", "__interval": "30s", "__interval_ms": "30000", "__range": "6h",
    "__range_s": "21600", "__range_ms": "21600000",
    "job": "(sockdiag|sockdiag-exporter)", "instance": "(host-1:10120|host-2:10120)",
    "process": "(nginx|)", "port": "(8080|3306)", "cluster": "(eu-1|)", "netns": "(host|)",
}
VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def contract():
    """grafana/tools/sockdiag-metrics.txt: {metric name: set of marks} (marks: "pending")."""
    out = {}
    with open(os.path.join(REPO_ROOT, "grafana/tools/sockdiag-metrics.txt"), encoding="utf-8") as fh:
        for line in fh:
            words = line.split()
            if words and not words[0].startswith("#"):
                out[words[0]] = set(words[1:])
    return out


def recorded_names(rules_dir=None):
    """Recording rule names of the rule files in RULES_DIR (default grafana/rules)."""
    rules_dir = rules_dir or os.path.join(REPO_ROOT, "grafana/rules")
    names = set()
    for name in sorted(os.listdir(rules_dir)):
        with open(os.path.join(rules_dir, name), encoding="utf-8") as fh:
            names |= set(re.findall(r"^\s*-?\s*record:\s*[\"']?([^\s\"']+)", fh.read(), re.M))
    return names


def known_metrics():
    """Metric names a query may use: the exporter's contract, our recording rules, up, ALERTS."""
    return {"up", "ALERTS"} | set(contract()) | recorded_names()


KNOWN = known_metrics()


class Findings:
    def __init__(self):
        self.items = []

    def add(self, where, msg):
        self.items.append(f"{where}: {msg}")


# ---- A small PromQL lexer: enough to find selectors, function frames and ranges ---------------
def lex(expr):
    toks, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            toks.append(("str", expr[i:j + 1]))
            i = j + 1
        elif c == "{":
            j, q = i + 1, None
            while j < n and (q or expr[j] != "}"):
                if q:
                    if expr[j] == "\\":
                        j += 1
                    elif expr[j] == q:
                        q = None
                elif expr[j] in "\"'`":
                    q = expr[j]
                j += 1
            toks.append(("brace", expr[i + 1:j]))
            i = j + 1
        elif c == "[":
            j = expr.index("]", i)
            toks.append(("range", expr[i:j + 1]))
            i = j + 1
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.match(r"(0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)", expr[i:])
            toks.append(("num", m.group(0)))
            i += len(m.group(0))
        elif c.isalpha() or c in "_:":
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr[i:])
            toks.append(("ident", m.group(0)))
            i += len(m.group(0))
        elif c == "$":
            m = re.match(r"\$\{?\w+\}?", expr[i:])
            toks.append(("var", m.group(0)))
            i += len(m.group(0))
        else:
            m = re.match(r"==|!=|>=|<=|=~|!~|[-+*/%^<>=(),@]", expr[i:])
            if not m:
                raise ValueError(f"unexpected character {c!r} at {i}")
            toks.append(("op", m.group(0)))
            i += len(m.group(0))
    return toks


MATCHER_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"\s*,?')


def matchers(body):
    out, pos = [], 0
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = MATCHER_RE.match(body, pos)
        if not m:
            raise ValueError(f"cannot read label matchers {{{body}}}")
        out.append((m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    return out


def check_expr(expr, where, f, require_scope=True, cluster_label=None):
    """Selectors scoped by job/instance, rate ranges, counters inside rate. Returns selectors."""
    try:
        toks = lex(expr)
    except ValueError as e:
        f.add(where, f"cannot lex query: {e}: {expr}")
        return []
    selectors, frames, pending, i = [], [], None, 0
    while i < len(toks):
        kind, val = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if kind == "ident" and val in GROUPING and nxt == ("op", "("):
            depth, i = 0, i + 1
            while i < len(toks):  # skip the label list
                if toks[i] == ("op", "("):
                    depth += 1
                elif toks[i] == ("op", ")"):
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
        elif kind == "ident" and val in AGG_OPS and nxt in (("ident", "by"), ("ident", "without")):
            pending = val
        elif kind == "ident" and nxt == ("op", "("):
            pending = val
        elif kind == "op" and val == "(":
            frames.append(pending)
            pending = None
        elif kind == "op" and val == ")":
            if frames:
                frames.pop()
        elif kind == "range":
            fn = frames[-1] if frames else None
            if fn in RATE_FUNCS and val != "[$__rate_interval]":
                f.add(where, f"{fn}() must use [$__rate_interval], not {val}: {expr}")
        elif kind == "ident" and val.lower() not in KEYWORDS or kind == "brace":
            name = val if kind == "ident" else ""
            body = None
            if kind == "brace":
                body = val
            elif nxt[0] == "brace":
                body = nxt[1]
                i += 1
            try:
                ms = matchers(body or "")
            except ValueError as e:
                f.add(where, f"{e}: {expr}")
                ms = []
            selectors.append((name, ms))
            if name and name not in KNOWN:
                f.add(where, f"unknown metric {name} (not in grafana/tools/sockdiag-metrics.txt "
                             f"nor a recording rule): {expr}")
            if require_scope:
                if ("job", "=~", "$job") not in ms:
                    f.add(where, f'selector {name or "{...}"} lacks job=~"$job": {expr}')
                if ("instance", "=~", "$instance") not in ms:
                    f.add(where, f'selector {name or "{...}"} lacks instance=~"$instance": {expr}')
                if cluster_label and (cluster_label, "=~", "$cluster") not in ms:
                    f.add(where, f'selector {name or "{...}"} lacks {cluster_label}=~"$cluster": {expr}')
            fn = frames[-1] if frames else None
            if name.endswith("_total") and fn not in RATE_FUNCS:
                f.add(where, f"counter {name} must be inside rate()/irate()/increase(): {expr}")
        i += 1
    return selectors


# ---- Variables ---------------------------------------------------------------------------------
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S)
QUERY_RESULT_RE = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def var_query(v):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    return q or ""


def var_promql(q):
    """The PromQL inside a Prometheus variable query, or None (label_values(label))."""
    m = LABEL_VALUES_RE.match(q)
    if m:
        return m.group(1)
    m = QUERY_RESULT_RE.match(q)
    if m:
        return m.group(1)
    return None


def lint_variables(d, where, f):
    variables = d.get("templating", {}).get("list", [])
    names = [v.get("name") for v in variables]
    ds_vars = [v for v in variables if v.get("type") == "datasource"]
    if len(ds_vars) != 1 or ds_vars[0].get("name") != "datasource":
        f.add(where, "needs exactly one datasource variable, named `datasource`")
    elif ds_vars[0].get("query") != "prometheus":
        f.add(where, "the datasource variable must select prometheus datasources")
    order = {n: i for i, n in enumerate(names)}
    for req in ("cluster", "job", "instance"):
        if req not in order:
            f.add(where, f"missing `{req}` query variable")
    cluster_label = cluster_label_of(d)
    for v in variables:
        vw = f"{where} variable {v.get('name')}"
        if v.get("type") != "query":
            continue
        if v.get("datasource") != DS:
            f.add(vw, "datasource must be ${datasource}")
        if v.get("refresh") != 2:
            f.add(vw, "refresh must be 2 (on time range change)")
        if v.get("name") in ("job", "instance"):
            if not v.get("multi") or not v.get("includeAll") or v.get("allValue") != ".+":
                f.add(vw, 'must be multi-select with All and allValue ".+"')
        if v.get("name") == "cluster":
            # .* : a Prometheus without a cluster label has only the empty value.
            if not v.get("multi") or not v.get("includeAll") or v.get("allValue") != ".*":
                f.add(vw, 'must be multi-select with All and allValue ".*"')
        if not v.get("description"):
            f.add(vw, "missing description")
        q = var_query(v)
        promql = var_promql(q)
        if promql is None:
            f.add(vw, f"unsupported variable query (use label_values(selector, label)): {q}")
            continue
        sels = check_expr(promql, vw, Findings(), require_scope=False)
        for name, ms in sels:
            has_job = ("job", "=~", "$job") in ms
            has_inst = ("instance", "=~", "$instance") in ms
            has_cluster = (cluster_label, "=~", "$cluster") in ms
            if order.get(v["name"], 0) > order.get("job", 99) and not has_job:
                f.add(vw, f'{name} must be scoped by job=~"$job": {q}')
            if order.get(v["name"], 0) > order.get("instance", 99) and not has_inst:
                f.add(vw, f'{name} must be scoped by instance=~"$instance": {q}')
            if order.get(v["name"], 0) > order.get("cluster", 99) and not has_cluster:
                f.add(vw, f'{name} must be scoped by {cluster_label}=~"$cluster": {q}')
    return set(n for n in names if n), cluster_label


def cluster_label_of(d):
    """The label the `cluster` variable lists (label_values(..., LABEL)), or None."""
    for v in d.get("templating", {}).get("list", []):
        if v.get("name") == "cluster":
            m = LABEL_VALUES_RE.match(var_query(v))
            if m:
                return m.group(2)
    return None


# ---- Panels ------------------------------------------------------------------------------------
def flat_panels(d):
    for p in d.get("panels", []):
        yield p
        for c in p.get("panels", []) or []:
            yield c


def check_link(url, where, f, uids):
    if url.startswith(REPO_URL):
        path = url[len(REPO_URL):].split("#")[0]
        if not os.path.isfile(os.path.join(REPO_ROOT, path)):
            f.add(where, f"link to a file that does not exist in the repository: {path}")
    elif url.startswith("/d/"):
        uid = url[3:].split("/")[0].split("?")[0]
        if uid not in uids:
            f.add(where, f"link to unknown dashboard uid {uid}")


def lint_dashboard(path, d, f, uids):
    where = os.path.basename(path)
    stem = os.path.splitext(where)[0]
    if d.get("uid") != stem:
        f.add(where, f"uid must be the file name ({stem}), is {d.get('uid')!r}")
    if len(d.get("uid") or "") > 40:
        f.add(where, "uid longer than 40 characters")
    if d.get("editable") is not False:
        f.add(where, "editable must be false (provisioned, changed through the generator)")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        f.add(where, "schemaVersion must be >= 36")
    for key in ("title", "description", "tags"):
        if not d.get(key):
            f.add(where, f"missing {key}")
    for link in d.get("links", []):
        check_link(link.get("url", ""), f"{where} dashboard link {link.get('title')}", f, uids)
    defined, cluster_label = lint_variables(d, where, f)

    ids, boxes, queries = set(), [], []
    for p in flat_panels(d):
        pw = f"{where} panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            f.add(pw, "duplicate panel id")
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g["x"] + g["w"] > 24:
            f.add(pw, f"bad gridPos {g}")
        else:
            for other, og in boxes:
                if (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"]
                        and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]):
                    f.add(pw, f"overlaps panel {other}")
            boxes.append((p.get("id"), g))
        if p.get("type") == "row":
            if not p.get("title"):
                f.add(pw, "row without title")
            continue
        if p.get("datasource") != DS:
            f.add(pw, "datasource must be ${datasource}")
        if not p.get("title"):
            f.add(pw, "missing title")
        if not p.get("description"):
            f.add(pw, "missing description")
        if not (p.get("fieldConfig", {}).get("defaults", {}).get("unit")):
            f.add(pw, "missing unit (fieldConfig.defaults.unit)")
        links = p.get("links") or []
        if not links:
            f.add(pw, "missing link to a runbook")
        for link in links:
            check_link(link.get("url", ""), pw, f, uids)
        targets = p.get("targets") or []
        if not targets:
            f.add(pw, "no query")
        refs = set()
        for t in targets:
            tw = f"{pw} query {t.get('refId')}"
            if t.get("refId") in refs:
                f.add(tw, "duplicate refId")
            refs.add(t.get("refId"))
            if t.get("datasource") != DS:
                f.add(tw, "datasource must be ${datasource}")
            expr = t.get("expr") or ""
            if not expr.strip():
                f.add(tw, "empty expression")
                continue
            check_expr(expr, tw, f, cluster_label=cluster_label)
            for m in VAR_RE.finditer(expr):
                name = m.group(1) or m.group(2) or m.group(3)
                if name not in defined and name not in BUILTIN_VARS:
                    f.add(tw, f"undefined variable ${name}")
            queries.append((tw, expr))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            promql = var_promql(var_query(v))
            if promql:
                queries.append((f"{where} variable {v['name']}", promql))
    return queries


def substitute(expr):
    def rep(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return SUBSTITUTIONS.get(name, m.group(0))
    return VAR_RE.sub(rep, expr)


def query_prometheus(base, queries, f, list_empty):
    empty, ok = [], 0
    for where, expr in queries:
        q = substitute(expr)
        if "$" in q:
            f.add(where, f"variable left after substitution: {q}")
            continue
        data = urllib.parse.urlencode({"query": q}).encode()
        req = urllib.request.Request(base.rstrip("/") + "/api/v1/query", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = json.load(r)
            ok += 1
            if not body.get("data", {}).get("result"):
                empty.append(where)
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e).get("error", "")
            except Exception:
                err = ""
            f.add(where, f"Prometheus answered HTTP {e.code} ({err}) for: {q}")
        except (urllib.error.URLError, OSError) as e:
            f.add(where, f"cannot reach Prometheus at {base}: {e}")
            break
    print(f"lint-dashboards: {ok} of {len(queries)} queries accepted by Prometheus at {base}")
    if list_empty:
        for w in empty:
            print(f"empty result: {w}")


def self_test(path, d, uids):
    """Inject one known mistake at a time into a copy of a clean dashboard: each must be caught."""
    import copy

    def panels_with(pred):
        return [p for p in flat_panels(d) if p.get("type") != "row" and pred(p)]

    rated = panels_with(lambda p: "[$__rate_interval]" in p["targets"][0].get("expr", ""))[0]
    plain = panels_with(lambda p: True)[0]
    ri, pi = d["panels"].index(rated), d["panels"].index(plain)

    def expr_edit(i, fn):
        def m(x):
            t = x["panels"][i]["targets"][0]
            t["expr"] = fn(t["expr"])
        return m

    def panel_edit(i, fn):
        return lambda x: fn(x["panels"][i])

    def var(name):
        return lambda x: next(v for v in x["templating"]["list"] if v["name"] == name)

    mutations = [
        ("no job matcher", expr_edit(pi, lambda e: e.replace('job=~"$job",', "")), 'lacks job=~"$job"'),
        ("no instance matcher", expr_edit(pi, lambda e: e.replace(',instance=~"$instance"', "")), 'lacks instance=~"$instance"'),
        ("no cluster matcher", expr_edit(pi, lambda e: re.sub(r'\w+=~"\$cluster",', "", e)), '=~"$cluster"'),
        ("job variable not scoped by cluster", lambda x: var("job")(x)["query"].update(
            query=re.sub(r',?\w+=~"\$cluster"', "", var("job")(x)["query"]["query"])), 'must be scoped by'),
        ("cluster allValue", lambda x: var("cluster")(x).update(allValue=".+"), 'allValue ".*"'),
        ("fixed rate window", expr_edit(ri, lambda e: e.replace("[$__rate_interval]", "[5m]")), "[$__rate_interval]"),
        ("bare counter", expr_edit(pi, lambda e: 'sockdiag_tcp_listen_drops_total{job=~"$job",instance=~"$instance"}'), "must be inside rate"),
        ("unknown metric", expr_edit(pi, lambda e: 'sockdiag_tcp_sokets{job=~"$job",instance=~"$instance"}'), "unknown metric"),
        ("undefined variable", expr_edit(pi, lambda e: e.replace('$instance"', '$instance",x=~"$nosuchvar"', 1)), "undefined variable"),
        ("no description", panel_edit(pi, lambda p: p.pop("description")), "missing description"),
        ("no unit", panel_edit(pi, lambda p: p["fieldConfig"]["defaults"].pop("unit")), "missing unit"),
        ("fixed datasource", panel_edit(pi, lambda p: p.update(datasource={"type": "prometheus", "uid": "abc"})), "datasource must be"),
        ("no runbook link", panel_edit(pi, lambda p: p.update(links=[])), "missing link"),
        ("dead runbook link", panel_edit(pi, lambda p: p["links"][0].update(url=REPO_URL + "grafana/runbooks/Nope.md")), "does not exist"),
        ("overlap", panel_edit(pi + 1, lambda p: p.update(gridPos=dict(d["panels"][pi]["gridPos"]))), "overlaps"),
        ("editable", lambda x: x.update(editable=True), "editable must be false"),
        ("job allValue", lambda x: var("job")(x).update(allValue=".*"), 'allValue ".+"'),
        ("instance refresh", lambda x: var("instance")(x).update(refresh=1), "refresh must be 2"),
        ("two datasource vars", lambda x: x["templating"]["list"].append(dict(x["templating"]["list"][0], name="ds2")), "exactly one datasource"),
    ]
    failed = 0
    clean = Findings()
    lint_dashboard(path, d, clean, uids)
    if clean.items:
        print(f"self-test: {path} is not clean to start with: {clean.items[0]}")
        return 1
    for name, mutate, expected in mutations:
        x = copy.deepcopy(d)
        mutate(x)
        f = Findings()
        lint_dashboard(path, x, f, uids)
        hit = any(expected in item for item in f.items)
        failed += not hit
        print(f"self-test {'ok  ' if hit else 'FAIL'} {name}: " + (f"caught ({expected})" if hit else "NOT caught"))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description="Lint Grafana dashboards; optionally query Prometheus.")
    ap.add_argument("--self-test", action="store_true",
                    help="inject known mistakes into the largest dashboard and check that each is caught")
    ap.add_argument("--prometheus", metavar="URL", help="send every query to URL/api/v1/query")
    ap.add_argument("--list-empty", action="store_true", help="with --prometheus: print queries without data")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    f = Findings()
    docs = {}
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as fh:
                docs[path] = json.load(fh)
        except (OSError, ValueError) as e:
            f.add(path, f"not valid JSON: {e}")
    uids = {d.get("uid") for d in docs.values()}
    if args.self_test:
        # the richest dashboard (it must have a rate() panel)
        path = max(docs, key=lambda k: len(list(flat_panels(docs[k]))))
        return self_test(path, docs[path], uids)
    queries = []
    for path, d in docs.items():
        queries += lint_dashboard(path, d, f, uids)
    print(f"lint-dashboards: {len(docs)} dashboards, {len(queries)} queries linted")
    if args.prometheus:
        query_prometheus(args.prometheus, queries, f, args.list_empty)
    for item in f.items:
        print(f"FAIL {item}")
    if f.items:
        print(f"lint-dashboards: {len(f.items)} findings")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
