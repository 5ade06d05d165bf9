// The build entry point: every generated file of the repository, keyed by its path under
// grafana/. Run through grafana/mixin/build.sh, which writes them and normalises the JSON:
//   jsonnet -J grafana/mixin -S -m OUT --tla-str part=rules grafana/mixin/build.jsonnet
//   jsonnet -J grafana/mixin -m OUT --tla-str part=dashboards grafana/mixin/build.jsonnet
// (dashboards are plain JSON output: std.manifestJsonEx is about 50 times slower in the
// Debian jsonnet). `config` is merged into _config (--tla-code-file config=FILE: the
// non-default build of tests/checks/35-mixin-config.sh).
function(config={}, part='rules')
  local mixin = (import 'mixin.libsonnet') + { _config+:: config };
  local header(what) =
    '# GENERATED from grafana/mixin (%s) by grafana/mixin/build.sh: do not edit.\n' % what
    + '# Change the jsonnet (or its _config), run grafana/mixin/build.sh, commit both.\n';
  local yaml(x) = std.manifestYamlDoc(x, indent_array_in_object=true, quote_keys=false) + '\n';
  if part == 'rules' then {
    'rules/sockdiag-recording.yml': header('rules/rules.libsonnet') + yaml(mixin.prometheusRules),
    'rules/sockdiag-alerts.yml': header('alerts/alerts.libsonnet') + yaml(mixin.prometheusAlerts),
  } else if part == 'dashboards' then {
    ['dashboards/' + name]: mixin.grafanaDashboards[name]
    for name in std.objectFields(mixin.grafanaDashboards)
  } else error 'part must be rules or dashboards, not ' + part
