// The build entry point: every generated file of the repository, keyed by its path under
// grafana/. Run through grafana/mixin/build.sh, which writes them and normalises the JSON.
//   jsonnet -J grafana/mixin -S -m OUT --tla-code config='{...}' grafana/mixin/build.jsonnet
// `config` is merged into _config (the non-default build of tests/checks/35-mixin-config.sh).
function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config+:: config };
  local header(what) =
    '# GENERATED from grafana/mixin (%s) by grafana/mixin/build.sh: do not edit.\n' % what
    + '# Change the jsonnet (or its _config), run grafana/mixin/build.sh, commit both.\n';
  local yaml(x) = std.manifestYamlDoc(x, indent_array_in_object=true, quote_keys=false) + '\n';
  {
    'rules/sockdiag-recording.yml': header('rules/rules.libsonnet') + yaml(mixin.prometheusRules),
    'rules/sockdiag-alerts.yml': header('alerts/alerts.libsonnet') + yaml(mixin.prometheusAlerts),
  } + {
    ['dashboards/' + name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
    for name in std.objectFields(mixin.grafanaDashboards)
  }
