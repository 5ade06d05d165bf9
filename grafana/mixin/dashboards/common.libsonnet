// What both dashboards share: the selectors every query carries, the standard variables
// (datasource, cluster, job, instance) and the "which container" join.
local g = import '../lib/dashboard.libsonnet';

function(cfg) {
  local C = cfg.clusterLabel,
  local self_ = self,

  // Every selector: the cluster, job and instance variables.
  scope:: ['%s=~"$cluster"' % C, 'job=~"$job"', 'instance=~"$instance"'],
  // metric{cluster, job, instance, extra...}
  S(metric, extra=[]):: '%s{%s}' % [metric, std.join(',', self.scope + extra)],
  // Per-namespace families also carry the netns variable.
  N(metric, extra=[]):: self.S(metric, ['netns=~"$netns"'] + extra),
  rate(metric, extra=[]):: 'rate(%s[$__rate_interval])' % self.N(metric, extra),
  // "by (cluster, a, b)": every grouped aggregation keeps the cluster label.
  by(labels):: 'by (%s)' % std.join(', ', [C] + labels),
  on(labels):: 'on (%s)' % std.join(', ', [C] + labels),

  // The container (or pod) behind each network namespace of EXPR, whose `by` must keep
  // instance and netns: sockdiag_netns_info's container_name, pod_namespace, pod_name,
  // container_id and pod_uid (named from the container runtime's state, no
  // kube-state-metrics needed) are added where it exists; series of namespaces without it
  // (the host, an exporter that does not emit netns yet) stay, without those labels.
  containerLabels:: ['container_name', 'pod_namespace', 'pod_name', 'container_id', 'pod_uid'],
  whichContainer(expr)::
    '(%s) * %s group_left (%s) max %s (%s) or ignoring (%s) (%s)' % [
      expr,
      self.on(['instance', 'netns']),
      std.join(', ', self.containerLabels),
      self.by(['instance', 'netns'] + self.containerLabels),
      self.N('sockdiag_netns_info'),
      std.join(', ', self.containerLabels),
      expr,
    ],

  RUNBOOK_INDEX:: g.doc(cfg, 'Runbooks: socket states explained', 'grafana/runbooks/README.md'),
  runbook(name):: g.runbook(cfg, name),

  uid(name):: cfg.dashboardUidPrefix + name,

  variables(extra=[]):: [
    g.dsVar(),
    g.queryVar('cluster',
               'Cluster',
               'label_values(sockdiag_build_info{%s}, %s)' % [cfg.sockdiagSelector, C],
               '.*',
               'Cluster(s): values of the label `%s`. Empty (All) when Prometheus does not attach one.' % C,
               hide=if cfg.showMultiCluster then 0 else 2),
    g.queryVar('job',
               'Job',
               'label_values(sockdiag_build_info{%s,%s=~"$cluster"}, job)' % [cfg.sockdiagSelector, C],
               '.+',
               'Prometheus job(s) scraping sockdiag_exporter.'),
    g.queryVar('instance',
               'Instance',
               'label_values(sockdiag_build_info{%s=~"$cluster",job=~"$job"}, instance)' % C,
               '.+',
               'Host(s) running sockdiag_exporter.'),
    g.queryVar('netns',
               'Network namespace',
               'label_values(sockdiag_tcp_sockets{%s=~"$cluster",job=~"$job",instance=~"$instance"}, netns)' % C,
               '.*',
               'Network namespace(s): host (PID 1\'s), an `ip netns` name, a container id (12 hex; the "which '
               + 'container" panels name it) or ns-<inode>; other = namespaces folded by the cap. All includes '
               + 'series without the label (an exporter before netns support).'),
  ] + extra,
}
