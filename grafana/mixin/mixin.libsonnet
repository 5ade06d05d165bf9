// The sockdiag_exporter monitoring mixin: Prometheus recording rules and alerts, Grafana
// dashboards, customised through _config (config.libsonnet).
//   prometheusRules    recording rules (rules/)
//   prometheusAlerts   alerts (alerts/)
//   grafanaDashboards  dashboards, keyed by file name (dashboards/)
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
