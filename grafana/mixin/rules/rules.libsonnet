// Recording rules (prometheusRules). Names follow level:metric:operations
// (https://prometheus.io/docs/practices/rules/):
//   level      = the labels the result keeps besides the cluster label and job: instance,
//                netns, then port, process, ...
//   metric     = the source metric; a state filter is folded into the name
//                (sockdiag_tcp_port_sockets{state="close_wait"} -> sockdiag_tcp_close_wait_sockets)
//   operations = what was applied (sum, max, ratio, rate5m, deriv30m)
//
// Every aggregation keeps the cluster label, job, instance and, for the per-namespace families,
// netns, and drops anything else a service discovery may have attached (pod, endpoint...): the
// fleet dashboard and the alerts see one stable label set per host and network namespace. The
// alerts and the fleet dashboard read these series instead of the raw ones: on a Prometheus
// scraping thousands of hosts they stay cheap.
//
// Rules that read another recorded series are in the same group, after it: a group evaluates
// its rules in order, so there is no one-interval lag between them.
//
// Durations ([5m], [30m]) are rewritten by grafana/tools/rules-overlay.py for the fast
// end-to-end test; the names keep saying 5m/30m there (docs/alerts.md, "Test overlay").
local q = import '../lib/promql.libsonnet';

{
  prometheusRules+:: {
    local cfg = $._config,
    local host = q.hostLabels(cfg),
    local ns = q.nsLabels(cfg),
    local s(metric, extra=[]) = q.sel(metric, [cfg.sockdiagSelector] + extra),
    local rec(name, expr) = { record: name, expr: expr },
    // sum by (<ns labels>, extra...) (metric{selector, matchers...})
    local agg(op, labels, metric, matchers=[]) = '%s %s (%s)' % [op, q.by(labels), s(metric, matchers)],
    local counterRate(name, metric) =
      rec('instance_netns:sockdiag_tcp_%s:rate5m' % name,
          'sum %s (rate(%s[5m]))' % [q.by(ns), s(metric)]),

    groups+: [
      {
        name: 'sockdiag.recording',
        rules: [
          // ---- Socket states ---------------------------------------------------------------
          rec('instance_netns_state:sockdiag_tcp_sockets:sum', agg('sum', ns + ['state'], 'sockdiag_tcp_sockets')),
          rec('instance_netns:sockdiag_tcp_sockets:sum', agg('sum', ns, 'sockdiag_tcp_sockets')),
          rec('instance_netns:sockdiag_tcp_close_wait_sockets:sum',
              agg('sum', ns, 'sockdiag_tcp_sockets', ['state="close_wait"'])),
          rec('instance_netns:sockdiag_tcp_time_wait_sockets:sum',
              agg('sum', ns, 'sockdiag_tcp_sockets', ['state="time_wait"'])),

          // ---- CLOSE_WAIT per process and port ---------------------------------------------
          // sockdiag_tcp_port_sockets only has non-zero series: a port/process without
          // CLOSE_WAIT has no series here (not a 0).
          rec('instance_netns_direction_port_process:sockdiag_tcp_close_wait_sockets:sum',
              agg('sum', ns + ['direction', 'port', 'process'], 'sockdiag_tcp_port_sockets', ['state="close_wait"'])),
          // Per-namespace CLOSE_WAIT trend (sockets per second, least squares over 30m): fleet
          // view "fastest growing".
          rec('instance_netns:sockdiag_tcp_close_wait_sockets:deriv30m',
              'deriv(instance_netns:sockdiag_tcp_close_wait_sockets:sum[30m])'),
          rec('instance_netns_direction_port_process:sockdiag_tcp_close_wait_stale_sockets:sum',
              agg('sum', ns + ['direction', 'port', 'process'], 'sockdiag_tcp_close_wait_stale_sockets')),
          rec('instance_netns:sockdiag_tcp_close_wait_stale_sockets:sum',
              agg('sum', ns, 'sockdiag_tcp_close_wait_stale_sockets')),
          rec('instance_netns:sockdiag_tcp_close_wait_oldest_seconds:max',
              agg('max', ns, 'sockdiag_tcp_close_wait_oldest_seconds')),

          // ---- Listeners (accept queues) ---------------------------------------------------
          // LISTEN Recv-Q / Send-Q are connection counts, not bytes. A full queue shows
          // length = limit + 1, so these ratios reach about 1.0x and more when the queue is
          // full. clamp_min: listen(fd, 0) gives a limit of 0 that still holds one connection.
          rec('instance_netns_address_port_process:sockdiag_tcp_listen_queue_length_per_limit:ratio', |||
            max %s (
              %s / clamp_min(%s, 1)
            )
          ||| % [q.by(ns + ['address', 'port', 'process']), s('sockdiag_tcp_listen_queue_length'), s('sockdiag_tcp_listen_queue_limit')]),
          rec('instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio', |||
            max %s (
              %s / clamp_min(%s, 1)
            )
          ||| % [q.by(ns + ['address', 'port', 'process']), s('sockdiag_tcp_listen_queue_peak'), s('sockdiag_tcp_listen_queue_limit')]),
          rec('instance_netns:sockdiag_tcp_listen_queue_peak_per_limit:max',
              'max %s (instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio)' % q.by(ns)),
          // Connections that were never accept()ed (inode 0, still in an accept queue).
          rec('instance_netns_port_state:sockdiag_tcp_unaccepted_sockets:sum',
              agg('sum', ns + ['port', 'state'], 'sockdiag_tcp_unaccepted_sockets')),
          rec('instance_netns:sockdiag_tcp_unaccepted_close_wait_sockets:sum',
              agg('sum', ns, 'sockdiag_tcp_unaccepted_sockets', ['state="close_wait"'])),

          // ---- UNIX stream listeners (php-fpm, gunicorn, uwsgi) ------------------------------
          // Same semantics as TCP: queue length (rqueue) against the backlog (wqueue), a full
          // queue shows backlog + 1.
          rec('instance_netns_path_process:sockdiag_unix_listen_queue_length_per_limit:ratio', |||
            max %s (
              %s / clamp_min(%s, 1)
            )
          ||| % [q.by(ns + ['path', 'process']), s('sockdiag_unix_listen_queue_length'), s('sockdiag_unix_listen_queue_limit')]),
          rec('instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio', |||
            max %s (
              %s / clamp_min(%s, 1)
            )
          ||| % [q.by(ns + ['path', 'process']), s('sockdiag_unix_listen_queue_peak'), s('sockdiag_unix_listen_queue_limit')]),
          rec('instance_netns:sockdiag_unix_listen_queue_peak_per_limit:max',
              'max %s (instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio)' % q.by(ns)),

          // ---- UDP receivers --------------------------------------------------------------
          // sockdiag_udp_drops_total never goes down while its series exists (the exporter
          // keeps sk_drops by socket cookie), so rate() sees a restarted receiver as growth
          // from where its series was, not as a reset.
          rec('instance_netns_direction_port_process:sockdiag_udp_drops:rate5m',
              'sum %s (rate(%s[5m]))' % [q.by(ns + ['direction', 'port', 'process']), s('sockdiag_udp_drops_total')]),
          rec('instance_netns_direction_port_process:sockdiag_udp_receive_queue_bytes_per_buffer:ratio', |||
            max %s (
              %s / clamp_min(%s, 1)
            )
          ||| % [q.by(ns + ['direction', 'port', 'process']), s('sockdiag_udp_receive_queue_bytes'), s('sockdiag_udp_receive_buffer_bytes')]),

          // ---- TIME_WAIT and ephemeral ports -----------------------------------------------
          rec('instance_netns_direction_port:sockdiag_tcp_time_wait_sockets:sum',
              agg('sum', ns + ['direction', 'port'], 'sockdiag_tcp_port_sockets', ['state="time_wait"'])),
          // TIME_WAIT of both families against net.ipv4.tcp_max_tw_buckets (one limit per
          // network namespace, shared by IPv4 and IPv6).
          rec('instance_netns:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio', |||
            instance_netns:sockdiag_tcp_time_wait_sockets:sum
              / %s
            max %s (%s > 0)
          ||| % [q.on(ns), q.by(ns), s('sockdiag_sysctl_tcp_max_tw_buckets')]),
          // Share of one port in the namespace's TIME_WAIT (names the culprit in the alert).
          rec('instance_netns_direction_port:sockdiag_tcp_time_wait_sockets_per_netns:ratio', |||
            instance_netns_direction_port:sockdiag_tcp_time_wait_sockets:sum
              / %s group_left ()
            (instance_netns:sockdiag_tcp_time_wait_sockets:sum > 0)
          ||| % [q.on(ns)]),
          // Local ports of net.ipv4.ip_local_port_range in use toward one destination, against
          // the size of the range: 1.0 means connect() to that destination fails
          // (EADDRNOTAVAIL).
          rec('instance_netns_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio', |||
            max %s (%s)
              / %s group_left ()
            max %s (%s > 0)
          ||| % [
            q.by(ns + ['remote_address', 'remote_port']),
            s('sockdiag_tcp_ephemeral_ports_used'),
            q.on(ns),
            q.by(ns),
            s('sockdiag_tcp_ephemeral_port_range_size'),
          ]),
          rec('instance_netns:sockdiag_tcp_ephemeral_ports_used_per_range:max',
              'max %s (instance_netns_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio)' % q.by(ns)),

          // ---- Kernel counters (TcpExt / Tcp, per network namespace) -----------------------
          // ListenOverflows also counts retransmitted SYNs/ACKs: read these as "happening",
          // not as a number of lost connections.
          counterRate('listen_overflows', 'sockdiag_tcp_listen_overflows_total'),
          counterRate('listen_drops', 'sockdiag_tcp_listen_drops_total'),
          counterRate('time_wait_overflow', 'sockdiag_tcp_time_wait_overflow_total'),
          counterRate('abort_on_timeout', 'sockdiag_tcp_abort_on_timeout_total'),
          counterRate('abort_on_close', 'sockdiag_tcp_abort_on_close_total'),
          counterRate('active_opens', 'sockdiag_tcp_active_opens_total'),
          counterRate('passive_opens', 'sockdiag_tcp_passive_opens_total'),

          // ---- The exporter itself ---------------------------------------------------------
          rec('instance:sockdiag_poll_errors:rate5m',
              'sum %s (rate(%s[5m]))' % [q.by(host), s('sockdiag_poll_errors_total')]),
          // Unattributed sockets are counted per namespace, the scan per exporter.
          rec('instance_netns:sockdiag_unattributed_sockets_per_scanned:ratio', |||
            max %s (%s)
              / %s group_left ()
            clamp_min(max %s (%s), 1)
          ||| % [q.by(ns), s('sockdiag_unattributed_sockets'), q.on(host), q.by(host), s('sockdiag_sockets_scanned')]),
        ],
      },
    ] + (
      if cfg.kubeStateMetrics then [{
        // Names the Kubernetes namespace and pod of a network namespace: sockdiag_netns_info
        // carries the pod UID from the kubepods cgroup path, kube_pod_info carries it as
        // `uid`. One series per (exporter, netns) with the kube-state-metrics `namespace` and
        // `pod` labels; the alert descriptions read it. Any target label `namespace`/`pod`
        // of the exporter's own series is dropped first (it names the exporter's pod).
        name: 'sockdiag.kube-state-metrics',
        rules: [
          rec('instance_netns:sockdiag_netns_info:kube_pod_info', |||
            max %s (%s)
              * %s group_left (namespace, pod)
            max %s (
              label_replace(%s, "pod_uid", "$1", "uid", "(.+)")
            )
          ||| % [
            q.by(ns + ['pod_uid', 'container_name']),
            s('sockdiag_netns_info', ['pod_uid!=""']),
            q.on([cfg.clusterLabel, 'pod_uid']),
            q.by([cfg.clusterLabel, 'pod_uid', 'namespace', 'pod']),
            q.sel('kube_pod_info', [cfg.kubeStateMetricsSelector]),
          ]),
        ],
      }] else []
    ),
  },
}
