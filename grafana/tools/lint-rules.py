#!/usr/bin/env python3
"""Check the sockdiag rule files against the project's rule conventions and their promtool tests for coverage.

    python3 grafana/tools/lint-rules.py                 # lint, exit 1 on findings
    python3 grafana/tools/lint-rules.py --severities    # print "ALERTNAME SEVERITY" lines

promtool checks syntax and behaviour; this checks what promtool cannot:
  files      grafana/rules/*.yml are plain Prometheus rule files (only `groups`), nothing else
  recording  names level:metric:operations, metric part sockdiag_..., level starting with
             instance/job, every `by (...)` keeps job, instance and the cluster label (--cluster-label,
             default cluster); a level naming netns keeps netns in every `by`/`on`
  alerts     CamelCase name with the Sockdiag prefix; severity critical|warning|info; `for`;
             summary (one sentence ending with a period), templated description naming the
             instance and the subject labels, runbook_url =
             https://github.com/sockdiag/sockdiag_exporter/blob/main/grafana/runbooks/<alert>.md,
             and that runbook exists with ## Meaning, ## Impact, ## Diagnosis, ## Mitigation
  metrics    every sockdiag_* name in expressions and annotation queries is in
             grafana/tools/sockdiag-metrics.txt, every level:metric:op name is recorded here
  tests      every alert has a promtool case where it fires with labels (severity included)
             and annotations asserted, and a case where it must stay silent
             (grafana/tests/*.test.yml)
  docs       docs/alerts.md mentions every alert
Needs PyYAML.
"""
import argparse
import glob
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNBOOK_BASE = "https://github.com/sockdiag/sockdiag_exporter/blob/main/grafana/runbooks/"
SEVERITIES = {"critical", "warning", "info"}
SECTIONS = ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation"]
RECORD_RE = re.compile(r"^([a-z][a-z0-9_]*):(sockdiag_[a-z0-9_]+):([a-z0-9_]+)$")
RECORDED_USE_RE = re.compile(r"\b([a-z][a-z0-9_]*:[a-z0-9_]+:[a-z0-9_]+)\b")
METRIC_USE_RE = re.compile(r"(?<![:\w])(sockdiag_[a-z0-9_]+)\b")
SUBJECT_LABELS = ("process", "port", "remote_address", "stage", "job")


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def main():
    ap = argparse.ArgumentParser(description="Lint sockdiag rule files and test coverage.")
    ap.add_argument("--severities", action="store_true", help="print ALERTNAME SEVERITY and exit")
    ap.add_argument("--cluster-label", default="cluster", help="the mixin's _config.clusterLabel")
    args = ap.parse_args()
    findings = []

    def bad(where, msg):
        findings.append(f"{where}: {msg}")

    contract = set()
    with open(os.path.join(ROOT, "grafana/tools/sockdiag-metrics.txt"), encoding="utf-8") as f:
        for line in f:
            words = line.split()  # NAME [pending]
            if words and not words[0].startswith("#"):
                contract.add(words[0])

    rule_files = sorted(glob.glob(os.path.join(ROOT, "grafana/rules/*")))
    alerts, records, exprs = {}, set(), []
    for path in rule_files:
        rel = os.path.relpath(path, ROOT)
        if not path.endswith(".yml"):
            bad(rel, "only *.yml Prometheus rule files belong in grafana/rules/")
            continue
        doc = load_yaml(path)
        if not isinstance(doc, dict) or set(doc) != {"groups"}:
            bad(rel, "not a plain Prometheus rule file (top level must be `groups` only)")
            continue
        for g in doc["groups"]:
            for r in g.get("rules", []):
                expr = r.get("expr", "")
                if "record" in r:
                    name = r["record"]
                    where = f"{rel} record {name}"
                    records.add(name)
                    m = RECORD_RE.match(name)
                    if not m:
                        bad(where, "name must be level:sockdiag_metric:operations")
                    elif not m.group(1).startswith(("instance", "job")):
                        bad(where, "level must start with instance or job")
                    for grp in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                        labels = {x.strip() for x in grp.split(",")}
                        if not {"job", "instance", args.cluster_label} <= labels:
                            bad(where, f"aggregation by ({grp}) drops job, instance or {args.cluster_label}")
                    # Per-namespace results must keep netns through every grouping and join.
                    # The "one" side of a group_left join may be host-level (e.g. sockets
                    # scanned per exporter): only what precedes `group_left` is checked.
                    if m and "netns" in m.group(1).split("_"):
                        many = re.split(r"\bon\s*\([^)]*\)\s*group_left", expr)[0]
                        for kw, grp in re.findall(r"\b(by|on)\s*\(([^)]*)\)", many):
                            if "netns" not in {x.strip() for x in grp.split(",")} and "pod_uid" not in grp:
                                bad(where, f"{kw} ({grp}) drops netns in a per-namespace rule")
                    exprs.append((where, expr))
                    continue
                name = r.get("alert", "")
                where = f"{rel} alert {name}"
                labels = r.get("labels") or {}
                ann = r.get("annotations") or {}
                alerts[name] = labels.get("severity")
                if not re.match(r"^Sockdiag[A-Z][A-Za-z0-9]+$", name):
                    bad(where, "name must be CamelCase with the Sockdiag prefix")
                if labels.get("severity") not in SEVERITIES:
                    bad(where, f"severity must be one of {sorted(SEVERITIES)}")
                if not r.get("for"):
                    bad(where, "missing `for`: every alert must skip blips")
                summary = ann.get("summary", "")
                if not summary.endswith("."):
                    bad(where, "summary must end with a period")
                if re.search(r"\.\s+[A-Z]", summary.rstrip(".")):
                    bad(where, "summary must be one sentence")
                desc = ann.get("description", "")
                if "{{" not in desc or "$labels.instance" not in desc:
                    bad(where, "description must be templated and name $labels.instance")
                if not any(f"$labels.{label}" in desc for label in SUBJECT_LABELS):
                    bad(where, "description must name what the alert is about (process/port/destination/stage)")
                if ann.get("runbook_url") != f"{RUNBOOK_BASE}{name}.md":
                    bad(where, f"runbook_url must be {RUNBOOK_BASE}{name}.md")
                rb = os.path.join(ROOT, "grafana/runbooks", f"{name}.md")
                if not os.path.isfile(rb):
                    bad(where, f"missing runbook grafana/runbooks/{name}.md")
                else:
                    with open(rb, encoding="utf-8") as f:
                        text = f.read()
                    pos = [text.find(s + "\n") for s in SECTIONS]
                    if -1 in pos or pos != sorted(pos):
                        bad(f"grafana/runbooks/{name}.md", f"needs sections {', '.join(SECTIONS)} in that order")
                exprs.append((where, expr))
                exprs.append((f"{where} annotations", " ".join(str(v) for v in ann.values())))

    if args.severities:
        for name, sev in sorted(alerts.items()):
            print(name, sev)
        return 0

    for where, text in exprs:
        for m in METRIC_USE_RE.findall(text):
            if m not in contract and m != "sockdiag_exporter":  # the program's name in prose
                bad(where, f"{m} is not in grafana/tools/sockdiag-metrics.txt (typo, or update the contract)")
        for m in RECORDED_USE_RE.findall(text):
            if m not in records and not re.match(r"^\d", m):
                bad(where, f"{m} is not a recording rule of grafana/rules/")

    fires, silent = {a: False for a in alerts}, {a: False for a in alerts}
    for path in sorted(glob.glob(os.path.join(ROOT, "grafana/tests/*.test.yml"))):
        rel = os.path.relpath(path, ROOT)
        for t in load_yaml(path).get("tests", []):
            for case in t.get("alert_rule_test", []) or []:
                name = case.get("alertname")
                if name not in alerts:
                    bad(rel, f"test for unknown alert {name}")
                    continue
                exp = case.get("exp_alerts") or []
                if not exp:
                    silent[name] = True
                    continue
                ok = True
                for e in exp:
                    if (e.get("exp_labels") or {}).get("severity") != alerts[name]:
                        bad(rel, f"{t.get('name')}: {name} expected alert must assert severity {alerts[name]}")
                        ok = False
                    if not e.get("exp_annotations"):
                        bad(rel, f"{t.get('name')}: {name} expected alert must assert annotations")
                        ok = False
                fires[name] = fires[name] or ok
    for name in alerts:
        if not fires[name]:
            bad("grafana/tests", f"{name} has no test case where it fires with labels and annotations asserted")
        if not silent[name]:
            bad("grafana/tests", f"{name} has no test case where it must stay silent")

    docs = os.path.join(ROOT, "docs/alerts.md")
    if not os.path.isfile(docs):
        bad("docs/alerts.md", "missing")
    else:
        with open(docs, encoding="utf-8") as f:
            text = f.read()
        for name in alerts:
            if name not in text:
                bad("docs/alerts.md", f"does not document {name}")

    for item in findings:
        print(f"FAIL {item}")
    print(f"lint-rules: {len(alerts)} alerts, {len(records)} recording rules, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
