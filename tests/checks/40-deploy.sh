#!/usr/bin/env bash
# Deployment artifacts under deploy/ (docs/deploy.md), each against a real validator:
#   yamllint --strict      every YAML file in deploy/ (config: deploy/.yamllint)
#   kubernetes             kustomization lists every manifest and renders (kubectl kustomize);
#                          kubernetes-validate --strict on every core manifest, raw and
#                          rendered, for each Kubernetes version it knows; the DaemonSet keeps
#                          the privileges and probes the docs promise; the ServiceMonitor,
#                          translated to a scrape config, passes promtool check config;
#                          the PrometheusRule is what generate-prometheusrule.py makes of
#                          grafana/rules/*.yml today (drift) and its spec passes promtool
#   systemd                systemd-analyze verify (no warning allowed) and
#                          systemd-analyze security --offline=yes exposure <= 2.5
#   compose                compose spec schema, the stack's own bind-mount sources exist, promtool check config
#                          (with the real rule files mounted the way compose mounts them),
#                          amtool check-config and its severity routing
# Every failed step is reported; the script exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/lib.sh
. tests/lib.sh
repo=$PWD

failures=0
fail() { echo "40-deploy: FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "40-deploy: ok: $*"; }
die() { echo "40-deploy: FAIL: $*" >&2; exit 1; }

need_apt systemd-analyze systemd || die "cannot install systemd (systemd-analyze)"
need_apt promtool prometheus || die "cannot install prometheus (promtool)"
need_apt amtool prometheus-alertmanager || die "cannot install prometheus-alertmanager (amtool)"
# The machine image ships a recent kubectl; Debian's kubernetes-client is the fallback.
need_apt kubectl kubernetes-client || die "cannot install kubectl"
need_apt shellcheck shellcheck || die "cannot install shellcheck"
need_pip yamllint yamllint==1.38.0 || die "cannot install yamllint"
need_pip kubernetes-validate kubernetes-validate==1.37.0 || die "cannot install kubernetes-validate"
need_pip check-jsonschema check-jsonschema==0.39.0 || die "cannot install check-jsonschema"
python3 -c 'import yaml' 2>/dev/null || die "python3 has no yaml module (PyYAML)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1)

# --- yamllint --------------------------------------------------------------------------------
echo "40-deploy: yamllint --strict deploy/"
if out=$(yamllint --strict -c deploy/.yamllint deploy/ 2>&1); then
  ok "yamllint: $(find deploy -name '*.yml' -o -name '*.yaml' -o -name .yamllint | wc -l) files clean"
else
  echo "$out" >&2
  fail "yamllint findings above"
fi

# --- shell scripts shipped in deploy/ (the Dockerfile's build stage among them) ----------------
mapfile -t scripts < <(find deploy -name '*.sh' | sort)
echo "40-deploy: shellcheck ${scripts[*]}"
if out=$(shellcheck "${scripts[@]}" 2>&1); then
  ok "shellcheck: ${#scripts[@]} scripts clean"
else
  echo "$out" >&2
  fail "shellcheck findings above"
fi

# --- Kubernetes --------------------------------------------------------------------------------
k8s=deploy/kubernetes
echo "40-deploy: kustomization lists every manifest, and renders"
listed=$(python3 -c '
import sys, yaml
print("\n".join(sorted(yaml.safe_load(open(sys.argv[1]))["resources"])))' "$k8s/kustomization.yaml")
present=$(find "$k8s" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -printf '%f\n' | sort)
if [ "$listed" = "$present" ]; then
  ok "kustomization resources = the $(wc -l <<<"$present") manifests in $k8s"
else
  fail "kustomization resources differ from the files in $k8s: $(diff <(echo "$listed") <(echo "$present") | grep '^[<>]' | tr '\n' ' ')"
fi
if kubectl kustomize "$k8s" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
  ok "kubectl kustomize $k8s renders $(grep -c '^kind:' "$tmp/rendered.yaml") objects"
  # The kustomization's images: entry must not pin another release than the DaemonSet.
  images=$(sed -n 's/^ *image: //p' "$tmp/rendered.yaml" | sort -u)
  [ "$images" = "sockdiag_exporter:$version" ] \
    || fail "rendered image is '$images', expected sockdiag_exporter:$version (Cargo.toml version)"
else
  cat "$tmp/kustomize.err" >&2
  fail "kubectl kustomize $k8s failed"
fi

# kubernetes-validate passes anything whose schema it lacks with only a warning: core objects
# must say "passed", and only the prometheus-operator kinds (checked with promtool below) and
# the Kustomization (rendered above) may be unknown to it.
# From 1.30 on, the oldest release with securityContext.appArmorProfile (docs/deploy.md).
versions=$(python3 -c '
import kubernetes_validate.utils as u
key = lambda v: tuple(map(int, v.split(".")))
print(" ".join(v for v in sorted(set(u.all_versions()), key=key) if key(v) >= (1, 30)))')
[ -n "$versions" ] || die "kubernetes-validate lists no Kubernetes versions"
manifests=("$k8s"/*.yaml)
core_objects=$(cat "${manifests[@]}" | grep -c '^apiVersion: \(v1\|apps/v1\|networking.k8s.io/v1\)$')
echo "40-deploy: kubernetes-validate --strict, Kubernetes $(wc -w <<<"$versions") versions: $versions"
kv_failed=""
for v in $versions; do
  if ! out=$(kubernetes-validate --strict -k "$v" "${manifests[@]}" "$tmp/rendered.yaml" 2>&1); then
    grep -v '^INFO' <<<"$out" >&2
    kv_failed+=" $v:invalid"
    continue
  fi
  unknown=$(grep "Couldn't find schema" <<<"$out" | grep -v -E "for kind (ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1|for kind Kustomization with api version kustomize.config.k8s.io/v1beta1" || true)
  if [ -n "$unknown" ]; then
    echo "$unknown" >&2
    kv_failed+=" $v:unknown-kind"
  fi
  raw=$(grep -c "^INFO $k8s/.* passed for resource " <<<"$out")
  rendered=$(grep -c "^INFO $tmp/rendered.yaml passed for resource " <<<"$out")
  if [ "$raw" -ne "$core_objects" ] || [ "$rendered" -ne "$core_objects" ]; then
    kv_failed+=" $v:passed-$raw-raw-$rendered-rendered-of-$core_objects"
  fi
done
if [ -z "$kv_failed" ]; then
  ok "kubernetes-validate --strict: $core_objects core objects pass on every version, raw and rendered"
else
  fail "kubernetes-validate --strict:$kv_failed"
fi

echo "40-deploy: DaemonSet keeps its promised privileges, probes and sizing"
cat >"$tmp/daemonset.py" <<'PY'
import sys, yaml
ds = yaml.safe_load(open(sys.argv[1]))
version = sys.argv[2]
spec = ds["spec"]["template"]["spec"]
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)
want(spec.get("hostNetwork") is True, "hostNetwork: true (the node's sockets)")
want(spec.get("hostPID") is True, "hostPID: true (the node's processes)")
want({"operator": "Exists"} in spec.get("tolerations", []), "tolerations: [{operator: Exists}]")
want(spec.get("priorityClassName") == "system-cluster-critical", "priorityClassName: system-cluster-critical")
want(spec.get("automountServiceAccountToken") is False, "automountServiceAccountToken: false")
(c,) = spec["containers"]
sc = c.get("securityContext", {})
want(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
want(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
want(sc.get("privileged") in (None, False), "not privileged")
caps = sc.get("capabilities", {})
want(caps.get("drop") == ["ALL"], "capabilities.drop: [ALL]")
want(sorted(caps.get("add", [])) == ["DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE"],
     "capabilities.add: exactly DAC_READ_SEARCH, SYS_ADMIN and SYS_PTRACE, got %s" % caps.get("add"))
psc = spec.get("securityContext", {})
# Capabilities added to a non-root container never take effect (kubernetes#56374).
want(psc.get("runAsUser", sc.get("runAsUser")) == 0, "runs as uid 0 so that the capabilities take effect")
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
want(ports.get("http") == 10120, "container port http = 10120")
want("--web.listen-address=:10120" in c.get("args", []), "args listen on :10120, the port the probes use")
for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
    get = c.get(probe, {}).get("httpGet", {})
    want(get.get("path") == path and get.get("port") == "http", "%s: GET %s on port http" % (probe, path))
res = c.get("resources", {})
for kind in ("requests", "limits"):
    for r in ("cpu", "memory"):
        want(r in res.get(kind, {}), "resources.%s.%s set" % (kind, r))
want(c["image"].rsplit(":", 1)[-1] == version, "image tag = Cargo.toml version %s, got %s" % (version, c["image"]))
# The runtimes' state, read-only, where the exporter's defaults look for it.
volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in spec.get("volumes", [])}
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
for path in ("/run/containerd/io.containerd.runtime.v2.task", "/run/containers/storage", "/var/lib/docker/containers"):
    m = mounts.get(path)
    want(m is not None and m.get("readOnly") is True and volumes.get(m["name"]) == path,
         "%s mounted read-only from the node's %s" % (path, path))
labels = ds["spec"]["template"]["metadata"]["labels"]
want(labels.get("app.kubernetes.io/version") == version, "app.kubernetes.io/version label = %s" % version)
if errors:
    sys.exit("DaemonSet must have: " + "; ".join(errors))
print("DaemonSet: hostNetwork+hostPID, uid 0 with drop ALL + DAC_READ_SEARCH,SYS_ADMIN,SYS_PTRACE, read-only root, "
      "probes /-/healthy and /-/ready, requests %s limits %s" % (res["requests"], res["limits"]))
PY
if out=$(python3 "$tmp/daemonset.py" "$k8s/daemonset.yaml" "$version" 2>&1); then
  ok "$out"
else
  echo "$out" >&2
  fail "DaemonSet policy"
fi

echo "40-deploy: ServiceMonitor, translated to a Prometheus scrape config, passes promtool"
# promtool cannot read a ServiceMonitor, but the operator turns each endpoint into a scrape
# config: translate the fields we use (an unknown field fails, the strictness
# kubernetes-validate cannot give a CRD) and let promtool judge intervals and relabelings.
cat >"$tmp/servicemonitor.py" <<'PY'
import sys, yaml
sm = yaml.safe_load(open(sys.argv[1]))
svc = yaml.safe_load(open(sys.argv[2]))
def only(obj, allowed, where):
    extra = set(obj) - set(allowed)
    if extra:
        sys.exit("%s: fields this check does not know (typo?): %s" % (where, sorted(extra)))
only(sm, ["apiVersion", "kind", "metadata", "spec"], "ServiceMonitor")
assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor", "not a v1 ServiceMonitor"
spec = sm["spec"]
only(spec, ["jobLabel", "selector", "namespaceSelector", "endpoints"], "ServiceMonitor.spec")
if spec["selector"].get("matchLabels") != svc["spec"]["selector"] or not set(spec["selector"]["matchLabels"].items()) <= set(svc["metadata"]["labels"].items()):
    sys.exit("ServiceMonitor.spec.selector.matchLabels must select the Service's labels")
if spec.get("jobLabel") not in svc["metadata"]["labels"]:
    sys.exit("ServiceMonitor.spec.jobLabel names a label the Service does not have")
svc_ports = {p["name"] for p in svc["spec"]["ports"]}
relabel_keys = {"sourceLabels": "source_labels", "separator": "separator", "targetLabel": "target_label",
                "regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action"}
scrape_configs = []
node_to_instance = False
for i, ep in enumerate(spec["endpoints"]):
    where = "ServiceMonitor.spec.endpoints[%d]" % i
    only(ep, ["port", "scheme", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings", "honorLabels"], where)
    if ep.get("port") not in svc_ports:
        sys.exit("%s.port %r is not a port name of the Service %s" % (where, ep.get("port"), sorted(svc_ports)))
    # Debian builds Prometheus without Kubernetes discovery: a static target stands in; the
    # relabelings only name __meta_* labels, which promtool accepts either way.
    sc = {"job_name": "servicemonitor/%d" % i, "static_configs": [{"targets": ["node:%d" % 10120]}]}
    for src, dst in (("scheme", "scheme"), ("path", "metrics_path"), ("interval", "scrape_interval"),
                     ("scrapeTimeout", "scrape_timeout"), ("honorLabels", "honor_labels")):
        if src in ep:
            sc[dst] = ep[src]
    for src, dst in (("relabelings", "relabel_configs"), ("metricRelabelings", "metric_relabel_configs")):
        rules = []
        for j, r in enumerate(ep.get(src, [])):
            only(r, relabel_keys, "%s.%s[%d]" % (where, src, j))
            rules.append({relabel_keys[k]: v for k, v in r.items()})
            if src == "relabelings" and r.get("targetLabel") == "instance" and r.get("sourceLabels") == ["__meta_kubernetes_pod_node_name"]:
                node_to_instance = True
        if rules:
            sc[dst] = rules
    scrape_configs.append(sc)
if not node_to_instance:
    sys.exit("ServiceMonitor must relabel __meta_kubernetes_pod_node_name to instance")
yaml.safe_dump({"scrape_configs": scrape_configs}, sys.stdout, sort_keys=False)
PY
if python3 "$tmp/servicemonitor.py" "$k8s/servicemonitor.yaml" "$k8s/service.yaml" >"$tmp/sm-prometheus.yml" 2>"$tmp/sm.err"; then
  if out=$(promtool check config "$tmp/sm-prometheus.yml" 2>&1); then
    ok "ServiceMonitor: fields known, selects the Service, node name -> instance, promtool check config passes"
  else
    echo "$out" >&2
    fail "the ServiceMonitor's scrape config does not pass promtool check config"
  fi
else
  cat "$tmp/sm.err" >&2
  fail "ServiceMonitor"
fi

echo "40-deploy: PrometheusRule = generate-prometheusrule.py(grafana/rules/*.yml), spec passes promtool"
if ls grafana/rules/*.yml >/dev/null 2>&1; then
  if python3 "$k8s/generate-prometheusrule.py" --output "$tmp/prometheusrule.yaml" 2>"$tmp/gen.err"; then
    if diff -u "$k8s/prometheusrule.yaml" "$tmp/prometheusrule.yaml" >"$tmp/drift.diff"; then
      ok "PrometheusRule is up to date with $(echo grafana/rules/*.yml)"
    else
      head -40 "$tmp/drift.diff" >&2
      fail "$k8s/prometheusrule.yaml drifted from grafana/rules/*.yml: run deploy/kubernetes/generate-prometheusrule.py"
    fi
  else
    cat "$tmp/gen.err" >&2
    fail "generate-prometheusrule.py failed"
  fi
else
  fail "no grafana/rules/*.yml: the PrometheusRule has no source of truth"
fi
# The checked-in object itself, not the regenerated one: that is what gets applied.
cat >"$tmp/prometheusrule.py" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]
if len(docs) != 1:
    sys.exit("expected one object, found %d" % len(docs))
(pr,) = docs
if pr.get("apiVersion") != "monitoring.coreos.com/v1" or pr.get("kind") != "PrometheusRule":
    sys.exit("not a monitoring.coreos.com/v1 PrometheusRule")
if set(pr) != {"apiVersion", "kind", "metadata", "spec"} or set(pr["spec"]) != {"groups"}:
    sys.exit("unexpected fields: %s / spec %s" % (sorted(pr), sorted(pr["spec"])))
yaml.safe_dump(pr["spec"], sys.stdout, sort_keys=False)
PY
if python3 "$tmp/prometheusrule.py" "$k8s/prometheusrule.yaml" >"$tmp/prometheusrule-spec.yml" 2>"$tmp/spec.err"; then
  if out=$(promtool check rules "$tmp/prometheusrule-spec.yml" 2>&1); then
    ok "PrometheusRule spec: $(grep -o 'SUCCESS: [0-9]* rules found' <<<"$out")"
  else
    echo "$out" >&2
    fail "the PrometheusRule's spec does not pass promtool check rules"
  fi
else
  cat "$tmp/spec.err" >&2
  fail "$k8s/prometheusrule.yaml"
fi

# --- systemd -----------------------------------------------------------------------------------
unit=deploy/systemd/sockdiag_exporter.service
envfile=deploy/systemd/sockdiag_exporter.env
echo "40-deploy: systemd-analyze verify $unit"
# verify insists that ExecStart exists: give it a root with the unit, a stand-in binary and the
# distribution's own units (sysinit.target and friends), instead of touching this machine's /usr.
root=$tmp/root
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -a /lib/systemd/system "$root/usr/lib/systemd/"
printf '#!/bin/sh\n' >"$root/usr/local/bin/sockdiag_exporter"
chmod 0755 "$root/usr/local/bin/sockdiag_exporter"
cp "$unit" "$root/etc/systemd/system/"
# The web-config drop-in (LoadCredential=) is verified with the unit.
mkdir -p "$root/etc/systemd/system/sockdiag_exporter.service.d"
cp deploy/systemd/web-config.conf "$root/etc/systemd/system/sockdiag_exporter.service.d/"
# verify exits 0 on an unknown or misspelled key and only warns: any output is a failure.
out=$(systemd-analyze verify --root="$root" "$root/etc/systemd/system/sockdiag_exporter.service" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
  ok "systemd-analyze verify: no warnings"
else
  echo "$out" >&2
  fail "systemd-analyze verify (exit $rc) complains about $unit"
fi
echo "40-deploy: systemd-analyze security --offline=yes $unit"
out=$(cd "$tmp" && systemd-analyze security --offline=yes "$repo/$unit" 2>&1)
exposure=$(sed -n 's/.*Overall exposure level for sockdiag_exporter.service: \([0-9.]*\).*/\1/p' <<<"$out")
if [ -z "$exposure" ]; then
  echo "$out" >&2
  fail "systemd-analyze security printed no exposure level"
elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }'; then
  ok "systemd exposure $exposure (<= 2.5)"
else
  grep '✗' <<<"$out" >&2
  fail "systemd exposure $exposure is above 2.5"
fi
unit_errors=""
for forbidden in 'ProtectProc=invisible' 'ProtectProc=noaccess' 'ProtectProc=ptraceable' 'ProcSubset=pid' 'PrivateUsers=' 'PrivateNetwork='; do
  grep -q "^$forbidden" "$unit" && unit_errors+=" sets $forbidden (hides the processes or sockets it reports);"
done
# shellcheck disable=SC2016 # $ARGS is literal: systemd expands it, not this shell.
for required in 'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
  'AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_SYS_ADMIN' \
  'CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_SYS_ADMIN' 'RestrictNamespaces=net' \
  'RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6' 'SystemCallFilter=@system-service' \
  'SystemCallFilter=setpriority' \
  'EnvironmentFile=-/etc/default/sockdiag_exporter' 'ExecStart=/usr/local/bin/sockdiag_exporter $ARGS'; do
  grep -qxF "$required" "$unit" || unit_errors+=" lacks '$required';"
done
# The environment file: only comments, blank lines and KEY=VALUE; ARGS is the one ExecStart uses.
bad_lines=$(grep -nvE '^[[:space:]]*(#.*)?$|^[A-Z_][A-Z0-9_]*=' "$envfile" || true)
[ -z "$bad_lines" ] || unit_errors+=" $envfile has lines that are not KEY=VALUE: $bad_lines;"
grep -qE '^ARGS=' "$envfile" || unit_errors+=" $envfile does not define ARGS;"
if [ -z "$unit_errors" ]; then
  ok "unit: DynamicUser, the three capabilities only, setns into network namespaces only, nothing that hides /proc or the network; env file well-formed"
else
  fail "systemd unit:$unit_errors"
fi

# --- compose -----------------------------------------------------------------------------------
compose=deploy/compose
echo "40-deploy: compose.yaml against the compose spec"
if out=$(check-jsonschema --builtin-schema vendor.compose-spec "$compose/compose.yaml" 2>&1); then
  ok "compose.yaml matches the compose spec"
else
  echo "$out" >&2
  fail "compose.yaml does not match the compose spec"
fi
# Bind mounts and the build context must exist where compose will look for them, and the rule
# files must land where prometheus.yml's rule_files looks.
cat >"$tmp/compose.py" <<'PY'
import glob, os, re, sys, yaml
from urllib.parse import urlparse
d, repo = sys.argv[1], sys.argv[2]
c = yaml.safe_load(open(os.path.join(d, "compose.yaml")))
services = c["services"]
errors, mounts = [], 0
def mounted(service, source):
    for v in services[service].get("volumes", []):
        parts = v.split(":")
        if os.path.abspath(os.path.join(d, parts[0])) == os.path.join(repo, source):
            return parts[1]
    errors.append("%s does not mount %s" % (service, source))
    return None
for name, svc in services.items():
    if "build" in svc:
        ctx = os.path.normpath(os.path.join(d, svc["build"]["context"]))
        if not os.path.isfile(os.path.join(ctx, svc["build"].get("dockerfile", "Dockerfile"))):
            errors.append("%s: no Dockerfile in build context %s" % (name, ctx))
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        # Absolute sources are the host's (Docker's data root, its netns mounts): only the
        # stack's own files can be checked here.
        if src.startswith("."):
            mounts += 1
            if not os.path.exists(os.path.normpath(os.path.join(d, src))):
                errors.append("%s: mount source %s does not exist" % (name, src))

# Prometheus: rule_files resolve (relative to /etc/prometheus) into the mounted grafana/rules;
# Alertmanager targets are services of this stack.
prom = yaml.safe_load(open(os.path.join(d, "prometheus.yml")))
rules_at = mounted("prometheus", "grafana/rules")
for pattern in prom.get("rule_files", []):
    if os.path.dirname(os.path.join("/etc/prometheus", pattern)) != rules_at:
        errors.append("prometheus.yml rule_files %s does not resolve into %s, where grafana/rules is mounted" % (pattern, rules_at))
for am in prom["alerting"]["alertmanagers"]:
    for sc in am["static_configs"]:
        for t in sc["targets"]:
            if t.split(":")[0] not in services:
                errors.append("prometheus.yml alertmanager target %s is not a service of the stack" % t)

# Grafana: the dashboards land where the provisioned file provider reads them, and every
# $VARIABLE the provisioning files expand is set, pointing at a real service.
dash_at = mounted("grafana", "grafana/dashboards")
mounted("grafana", "grafana/provisioning")
env = services["grafana"].get("environment", {})
providers = 0
for f in sorted(glob.glob(os.path.join(repo, "grafana/provisioning/dashboards/*.y*ml"))):
    for p in yaml.safe_load(open(f)).get("providers", []):
        if p.get("type", "file") == "file":
            providers += 1
            if p["options"]["path"] != dash_at:
                errors.append("%s reads dashboards from %s, compose mounts them at %s" % (os.path.relpath(f, repo), p["options"]["path"], dash_at))
if not providers:
    errors.append("grafana/provisioning/dashboards has no file provider")
def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node
for f in sorted(glob.glob(os.path.join(repo, "grafana/provisioning/**/*.y*ml"), recursive=True)):
    for value in strings(yaml.safe_load(open(f))):
        for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value):
            if var not in env:
                errors.append("%s expands $%s, which the grafana service does not set" % (os.path.relpath(f, repo), var))
for var, value in env.items():
    if str(value).startswith("http"):
        u = urlparse(value)
        if u.hostname not in services:
            errors.append("grafana %s=%s: %s is not a service of the stack" % (var, value, u.hostname))
if errors:
    sys.exit("; ".join(errors))
print("compose: build context and %d bind-mount sources exist; rules, dashboards and provisioning "
      "land where prometheus.yml and grafana/provisioning look; service URLs resolve" % mounts)
PY
if out=$(python3 "$tmp/compose.py" "$compose" "$repo" 2>&1); then
  ok "$out"
else
  echo "$out" >&2
  fail "compose paths"
fi
echo "40-deploy: promtool check config $compose/prometheus.yml (with grafana/rules mounted as rules/)"
mkdir -p "$tmp/prom"
cp "$compose/prometheus.yml" "$tmp/prom/"
ln -s "$repo/grafana/rules" "$tmp/prom/rules"
if out=$(promtool check config "$tmp/prom/prometheus.yml" 2>&1); then
  nrules=$(grep -o 'SUCCESS: [0-9]* rules found' <<<"$out" | awk '{s += $2} END {print s + 0}')
  if [ "$nrules" -gt 0 ]; then
    ok "promtool check config: config and $nrules rules from grafana/rules"
  else
    echo "$out" >&2
    fail "promtool check config found no rules through rule_files"
  fi
else
  echo "$out" >&2
  fail "promtool check config $compose/prometheus.yml"
fi
echo "40-deploy: amtool check-config $compose/alertmanager.yml; routes like grafana/alertmanager/alertmanager.yml"
am=$compose/alertmanager.yml
am_example=grafana/alertmanager/alertmanager.yml
if out=$(amtool check-config "$am" 2>&1); then
  ok "amtool check-config $am"
else
  echo "$out" >&2
  fail "amtool check-config $am"
fi
# The stack's copy keeps the example's route tree and inhibition, minus where receivers deliver.
if [ -f "$am_example" ]; then
  if out=$(python3 - "$am" "$am_example" 2>&1 <<<'
import sys, yaml
ours, theirs = (yaml.safe_load(open(f)) for f in sys.argv[1:])
diff = [k for k in ("route", "inhibit_rules") if ours.get(k) != theirs.get(k)]
names = lambda c: sorted(r["name"] for r in c["receivers"])
if names(ours) != names(theirs):
    diff.append("receiver names %s vs %s" % (names(ours), names(theirs)))
sys.exit("differs from the example in: " + ", ".join(diff) if diff else 0)
'); then
    routing=""
    # Every alert of the rule files, by its severity, plus a foreign alert, must reach the same
    # receiver under both configurations.
    cases=$(python3 -c '
import glob, yaml
for f in sorted(glob.glob("grafana/rules/*.yml")):
    for g in yaml.safe_load(open(f))["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                print("alertname=%s severity=%s" % (r["alert"], r.get("labels", {}).get("severity", "")))
print("alertname=OtherTeamAlert severity=critical")')
    while read -ra labels; do
      a=$(amtool config routes test --config.file="$am" "${labels[@]}" 2>/dev/null)
      b=$(amtool config routes test --config.file="$am_example" "${labels[@]}" 2>/dev/null)
      [ -n "$a" ] && [ "$a" = "$b" ] || routing+=" {${labels[*]}}: $a vs $b;"
    done <<<"$cases"
    if [ -z "$routing" ]; then
      ok "$am: same route tree, inhibition and receivers as $am_example; $(wc -l <<<"$cases") alerts route alike"
    else
      fail "alerts route differently in $am and $am_example:$routing"
    fi
  else
    echo "$out" >&2
    fail "$am has drifted from $am_example (route, inhibit_rules or receiver names)"
  fi
else
  fail "$am_example is missing: the stack's Alertmanager config has nothing to follow"
fi

echo
if [ "$failures" -gt 0 ]; then
  echo "40-deploy: $failures check(s) FAILED" >&2
  exit 1
fi
echo "40-deploy: all passed"
