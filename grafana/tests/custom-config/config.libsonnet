// A non-default _config for tests/checks/35-mixin-config.sh: another job name, another cluster
// label, kube-state-metrics on, and other dashboard settings. Every rule, alert and dashboard
// built with it must still work (promtool, lint, and the end-to-end test run under it).
{
  sockdiagSelector: 'job="node-sockets"',
  clusterLabel: 'k8s_cluster',
  showMultiCluster: true,
  kubeStateMetrics: true,
  kubeStateMetricsSelector: 'job="kube-state-metrics"',
  dashboardTags: ['sockets', 'lab'],
  dashboardUidPrefix: 'lab-sockets-',
  dashboardTitlePrefix: 'lab / ',
  dashboardRefresh: '30s',
  dashboardTimezone: 'utc',
  closeWaitStaleFor: '10m',
}
