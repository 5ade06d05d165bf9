// The knobs of the sockdiag mixin. Override any of them with
//   (import 'sockdiag-mixin/mixin.libsonnet') + { _config+:: { sockdiagSelector: 'job="node-sockets"' } }
// Every alert threshold and `for:` below is also quoted in docs/alerts.md.
{
  _config+:: {
    // ---- Selectors ---------------------------------------------------------------------------
    // Picks the exporter's series in every rule, alert and dashboard variable. The default
    // matches any job whose name contains "sockdiag" (the shipped Prometheus, compose and
    // Kubernetes examples all do).
    sockdiagSelector: 'job=~".*sockdiag.*"',

    // The label that tells clusters apart (kubernetes-mixin's clusterLabel). It is kept by
    // every aggregation and join, and the dashboards get a `cluster` variable over it. With a
    // single Prometheus and no such label it is simply empty: nothing to configure.
    clusterLabel: 'cluster',
    // Show the dashboards' cluster variable (it always filters; hidden by default).
    showMultiCluster: false,

    // ---- kube-state-metrics (off by default) ---------------------------------------------------
    // On: a recording rule joins sockdiag_netns_info{pod_uid} with kube_pod_info{uid} and the
    // alert descriptions name the Kubernetes namespace and pod of a network namespace.
    // Needs kube-state-metrics scraped by the same Prometheus.
    kubeStateMetrics: false,
    kubeStateMetricsSelector: 'job="kube-state-metrics"',

    // ---- Links ---------------------------------------------------------------------------------
    // Runbook pages and repository links (alerts' runbook_url, dashboard links). Change it
    // when you mirror the runbooks elsewhere.
    repositoryUrl: 'https://github.com/sockdiag/sockdiag_exporter/blob/main/',
    runbookUrlPrefix: self.repositoryUrl + 'grafana/runbooks/',

    // ---- Dashboards ----------------------------------------------------------------------------
    dashboardTags: ['sockdiag', 'tcp', 'linux'],
    // uids are <prefix>overview and <prefix>fleet (the file names follow them).
    dashboardUidPrefix: 'sockdiag-',
    dashboardTitlePrefix: 'sockdiag / ',
    dashboardRefresh: '1m',
    dashboardTimezone: 'browser',
    dashboardTimeFrom: 'now-6h',

    // ---- Alert thresholds and windows ----------------------------------------------------------
    // CLOSE_WAIT growing (page): the lowest count of the last closeWaitGrowingWindow exceeds the
    // median of closeWaitGrowingBaselineOffset earlier by max(closeWaitGrowingMinIncrease,
    // closeWaitGrowingMinRelativeIncrease * now), deriv over closeWaitGrowingDerivWindow agrees,
    // and at least closeWaitGrowingMinSockets sockets.
    closeWaitGrowingWindow: '10m',
    closeWaitGrowingBaselineOffset: '30m',
    closeWaitGrowingDerivWindow: '30m',
    closeWaitGrowingMinIncrease: 25,
    closeWaitGrowingMinRelativeIncrease: 0.1,
    closeWaitGrowingMinSockets: 50,
    closeWaitGrowingFor: '15m',
    // CLOSE_WAIT older than the exporter's stale threshold (ticket).
    closeWaitStaleFor: '15m',
    // Accept queue peak / backlog (page); a full queue reads backlog+1.
    listenQueueFullRatio: 0.9,
    listenQueueFullFor: '5m',
    // CLOSE_WAIT sockets in an accept queue (page).
    listenerNotAcceptingFor: '10m',
    // ListenDrops/ListenOverflows rising (ticket); listeners whose peak fill reached
    // listenOverflowsSuspectRatio in listenOverflowsSuspectWindow are named.
    listenOverflowsFor: '10m',
    listenOverflowsSuspectRatio: 0.5,
    listenOverflowsSuspectWindow: '10m',
    // Ephemeral ports in use toward one destination / range size (page).
    ephemeralPortsRatio: 0.75,
    ephemeralPortsFor: '5m',
    // TIME_WAIT / net.ipv4.tcp_max_tw_buckets (ticket); ports with timeWaitPortShare of the
    // namespace's TIME_WAIT are named (also by SockdiagTimeWaitBucketsOverflowing).
    timeWaitBucketsRatio: 0.8,
    timeWaitBucketsFor: '15m',
    timeWaitPortShare: 0.25,
    timeWaitOverflowFor: '10m',
    // UNIX stream listener queue peak / backlog (page): php-fpm, gunicorn, uwsgi.
    unixListenQueueFullRatio: 0.9,
    unixListenQueueFullFor: '5m',
    // UDP datagrams dropped on one (direction, port, process) per second over 5m (page): a
    // receiver that cannot keep up loses data silently.
    udpReceiveDropsRate: 0,
    udpReceiveDropsFor: '5m',
    // The exporter itself.
    pollErrorsFor: '10m',
    pollStaleWindow: '10m',
    pollStaleFor: '5m',
    exporterDownFor: '5m',
    attributionMinSockets: 10,
    attributionMinRatio: 0.01,
    attributionFor: '30m',
  },
}
