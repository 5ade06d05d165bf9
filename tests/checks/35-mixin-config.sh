#!/usr/bin/env bash
# The mixin with a non-default _config (grafana/tests/custom-config/config.libsonnet: job
# "node-sockets", cluster label "k8s_cluster", kube-state-metrics join on, other dashboard
# uid prefix, tags, refresh and timezone): one pass/fail for tests/run.sh.
#
#   1. grafana/mixin/build.sh --config ... builds it (Debian's jsonnet)
#   2. the _config took effect everywhere: every raw selector of the rules carries the job
#      selector, every by/on keeps k8s_cluster and none keeps the default `cluster`; the
#      dashboards have the configured uids, tags, refresh and timezone, and their variables
#      list k8s_cluster and the configured job
#   3. promtool check rules on the built rule files
#   4. promtool test rules grafana/tests/custom-config/custom.test.yml against them: the
#      configured job pages and another job does not, alerts keep k8s_cluster, the
#      kube_pod_info join names the pod
#   5. grafana/tools/lint-dashboards.py on the built dashboards (it reads the cluster label
#      from the cluster variable: every selector must carry k8s_cluster=~"$cluster")
#   6. tests/checks/30-e2e.sh under this build: the exporter scraped as job node-sockets with
#      target label k8s_cluster="lab-1" in a private network namespace, the built rules page
#      with that label, and every built dashboard query returns what the scenario fills
# Run: bash tests/checks/35-mixin-config.sh (root; installs what it needs on a fresh Debian).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

need_apt jsonnet jsonnet || exit 1
need_apt promtool prometheus || exit 1
need_apt python3 python3 || exit 1

CONFIG=grafana/tests/custom-config/config.libsonnet
JOB=node-sockets
CLUSTER_LABEL=k8s_cluster
UID_PREFIX=lab-sockets-
check_begin
OUT=$TMP/custom

build() {
  grafana/mixin/build.sh --config "$CONFIG" --out "$OUT"
}

took_effect() {
  python3 - "$OUT" "$JOB" "$CLUSTER_LABEL" "$UID_PREFIX" <<'PY'
import glob, json, os, re, sys
out, job, cl, prefix = sys.argv[1:]
bad = []
rules = {os.path.basename(p): open(p).read() for p in glob.glob(f"{out}/rules/*.yml")}
for name, text in rules.items():
    if ".*sockdiag.*" in text:
        bad.append(f"{name}: the default selector is left")
    for sel in re.findall(r"\b(sockdiag_[a-z0-9_]+|up)\{([^}]*)\}", text):
        if "%q" in sel[1]:
            continue  # template queries in annotations name the alert's own labels
        if f'job=\\"{job}\\"' not in sel[1] and f'job="{job}"' not in sel[1]:
            bad.append(f"{name}: {sel[0]}{{{sel[1]}}} lacks job=\"{job}\"")
    for kw, grp in re.findall(r"\b(by|on)\s*\(([^)]*)\)", text):
        labels = {x.strip() for x in grp.split(",")}
        if "cluster" in labels:
            bad.append(f"{name}: {kw} ({grp}) keeps the default cluster label")
        if cl not in labels and not labels <= {"direction", "port"}:  # annotation topk by (direction, port)
            bad.append(f"{name}: {kw} ({grp}) drops {cl}")
if "sockdiag.kube-state-metrics" not in rules.get("sockdiag-recording.yml", ""):
    bad.append("kubeStateMetrics: true did not add the kube-state-metrics group")
want = {f"{prefix}overview.json", f"{prefix}fleet.json"}
got = {os.path.basename(p) for p in glob.glob(f"{out}/dashboards/*.json")}
if got != want:
    bad.append(f"dashboards {sorted(got)}, expected {sorted(want)}")
for p in sorted(glob.glob(f"{out}/dashboards/*.json")):
    d = json.load(open(p))
    n = os.path.basename(p)
    for key, value in (("tags", ["sockets", "lab"]), ("refresh", "30s"), ("timezone", "utc")):
        if d.get(key) != value:
            bad.append(f"{n}: {key} is {d.get(key)!r}, expected {value!r}")
    if not d["title"].startswith("lab / "):
        bad.append(f"{n}: title {d['title']!r} lacks the configured prefix")
    v = {x["name"]: x for x in d["templating"]["list"]}
    if not v["cluster"]["query"]["query"].endswith(f", {cl})") or v["cluster"]["hide"] != 0:
        bad.append(f"{n}: the cluster variable does not list {cl} (or is hidden)")
    if f'job="{job}"' not in v["job"]["query"]["query"]:
        bad.append(f"{n}: the job variable does not use the configured selector")
for b in bad:
    print("FAIL", b)
print(f"_config: {len(rules)} rule files and {len(got)} dashboards checked, {len(bad)} findings")
sys.exit(1 if bad else 0)
PY
}

rule_test() {
  cp grafana/tests/custom-config/custom.test.yml "$OUT/"
  promtool test rules "$OUT/custom.test.yml"
}

e2e() {
  SOCKDIAG_E2E_MIXIN_CONFIG=$CONFIG SOCKDIAG_E2E_JOB=$JOB SOCKDIAG_E2E_CLUSTER_LABEL=$CLUSTER_LABEL \
    SOCKDIAG_E2E_CLUSTER=lab-1 SOCKDIAG_E2E_UID_PREFIX=$UID_PREFIX bash tests/checks/30-e2e.sh
}

step "build with $CONFIG" build
step "the non-default _config took effect" took_effect
step "promtool check rules (non-default build)" bash -c "promtool check rules $OUT/rules/*.yml"
step "promtool test rules grafana/tests/custom-config/custom.test.yml" rule_test
step "dashboard lint (non-default build)" bash -c "python3 grafana/tools/lint-dashboards.py $OUT/dashboards/*.json"
step "end to end under the non-default build (30-e2e.sh)" e2e

check_end 35-mixin-config
