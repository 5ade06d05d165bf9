// grafanaDashboards: file name -> dashboard. uids (and so file names) are
// _config.dashboardUidPrefix + overview / fleet.
{
  grafanaDashboards+::
    local cfg = $._config;
    {
      [cfg.dashboardUidPrefix + 'overview.json']: (import 'overview.libsonnet')(cfg),
      [cfg.dashboardUidPrefix + 'fleet.json']: (import 'fleet.libsonnet')(cfg),
    },
}
