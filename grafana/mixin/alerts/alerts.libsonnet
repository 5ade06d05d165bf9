// Alerting rules (prometheusAlerts). They read the recording rules of rules/rules.libsonnet:
// load both.
// severity: critical = page, warning = ticket, info = dashboard / Alertmanager UI only.
// Every alert names what it is about in labels (netns plus direction/port/process,
// address/port/process, path/process, remote_address/remote_port) and in its description,
// which also names the container (sockdiag_netns_info) and, with _config.kubeStateMetrics,
// the Kubernetes namespace/pod. Per-namespace kernel counters (overflows, TIME_WAIT bucket
// overflow) carry no port: those alerts borrow the labels of the listener or port that
// explains them when one stands out, and fall back to a namespace-level alert otherwise.
//
// Thresholds and windows come from _config (config.libsonnet) and are documented per alert in
// docs/alerts.md. The fast end-to-end test runs a rewritten copy of the generated YAML:
// grafana/tools/rules-overlay.py scales every `for:` and every [range]/offset duration.
local q = import '../lib/promql.libsonnet';

{
  prometheusAlerts+:: {
    local cfg = $._config,
    local C = cfg.clusterLabel,
    local host = q.hostLabels(cfg),
    local ns = q.nsLabels(cfg),
    local s(metric, extra=[]) = q.sel(metric, [cfg.sockdiagSelector] + extra),
    local H = q.human,

    // A template query for one series of the alert's own subject:
    //   printf "AGG(METRIC{l1=%q,...})" $labels.l1 ...
    local tq(metric, labels, agg='', extra='') =
      'printf "' + (if agg != '' then agg + '(' else '') + metric + '{'
      + std.join(',', [l + '=%q' for l in labels] + (if extra != '' then [extra] else []))
      + '}' + (if agg != '' then ')' else '') + '" '
      + std.join(' ', ['$labels.' + l for l in labels]),
    // "{{ with QUERY | query }}{{ . | first | value | FMT }}{{ else }}?{{ end }}"
    local tv(query, fmt='humanize') =
      '{{ with ' + query + ' | query }}{{ . | first | value | ' + fmt + ' }}{{ else }}?{{ end }}',

    // Which network namespace, and the pod (namespace/name) or container that owns it, as
    // sockdiag_netns_info names them from the container runtime's state; with
    // _config.kubeStateMetrics, also the pod kube-state-metrics knows by its UID. Nothing at
    // all when the alert has no netns label (an exporter that does not emit it, or a
    // host-wide alert).
    local nsWhere =
      '{{ if $labels.netns }} in network namespace {{ $labels.netns }}'
      + '{{ with ' + tq('sockdiag_netns_info', ns) + ' | query }}{{ $info := . | first }}'
      + '{{ if $info | label "pod_name" }} (pod {{ with $info | label "pod_namespace" }}{{ . }}/{{ end }}{{ $info | label "pod_name" }})'
      + '{{ else if $info | label "container_name" }} (container {{ $info | label "container_name" }}){{ end }}{{ end }}'
      + (if cfg.kubeStateMetrics then
           '{{ with ' + tq('instance_netns:sockdiag_netns_info:kube_pod_info', ns) + ' | query }}'
           + ' (pod {{ . | first | label "namespace" }}/{{ . | first | label "pod" }}){{ end }}'
         else '')
      + '{{ end }}',
    local summaryNs = '{{ if $labels.netns }} in {{ $labels.netns }}{{ end }}',
    local at = '{{ $labels.instance }}' + nsWhere,
    // 0.5 -> "half", 0.25 -> "a quarter", else a percentage (prose of the descriptions).
    local share(x) = if x == 0.5 then 'half' else if x == 0.25 then 'a quarter' else q.pct(x),
    local owner = '{{ or $labels.process "(no owner, never accepted)" }}',
    local portSide = '{{ if eq $labels.direction "inbound" }}local service port{{ else }}outbound connections to remote port{{ end }} {{ $labels.port }}',

    local alert(name, expr, forDur, severity, summary, description) = {
      alert: name,
      expr: expr,
      'for': forDur,
      labels: { severity: severity },
      annotations: {
        summary: summary,
        description: std.join(' ', description),
        runbook_url: cfg.runbookUrlPrefix + name + '.md',
      },
    },

    local cwSum = 'instance_netns_direction_port_process:sockdiag_tcp_close_wait_sockets:sum',
    local dpp = ns + ['direction', 'port', 'process'],
    local app = ns + ['address', 'port', 'process'],

    groups+: [
      {
        name: 'sockdiag.alerts',
        rules: [
          // ---- CLOSE_WAIT --------------------------------------------------------------------
          // Growth, robust to noise and to deploy blips: the LOWEST count of the last 10
          // minutes must exceed the TYPICAL (median) count of 30 minutes earlier by max(25, 10%
          // of now). A spike (deploy, burst) does not raise a minimum; a restart dip does not
          // lower a median; a steady high churn gives min(now) < median(then). deriv() must
          // agree, and there must be at least 50 sockets (floor). A series that did not exist
          // 30 minutes ago counts as 0.
          alert('SockdiagCloseWaitGrowing',
                |||
                  (
                      min_over_time(%(cw)s[%(win)s])
                    - (
                          quantile_over_time(0.5, %(cw)s[%(win)s] offset %(off)s)
                        or
                          0 * %(cw)s
                      )
                  )
                    > clamp_min(%(rel)s * %(cw)s, %(inc)s)
                  and
                    deriv(%(cw)s[%(dwin)s]) > 0
                  and
                    %(cw)s >= %(floor)s
                ||| % {
                  cw: cwSum,
                  win: cfg.closeWaitGrowingWindow,
                  off: cfg.closeWaitGrowingBaselineOffset,
                  dwin: cfg.closeWaitGrowingDerivWindow,
                  rel: q.num(cfg.closeWaitGrowingMinRelativeIncrease),
                  inc: q.num(cfg.closeWaitGrowingMinIncrease),
                  floor: q.num(cfg.closeWaitGrowingMinSockets),
                },
                cfg.closeWaitGrowingFor,
                'critical',
                'CLOSE_WAIT sockets of {{ or $labels.process "(no owner)" }}' + summaryNs + ' on {{ $labels.direction }} port {{ $labels.port }} keep growing.',
                [
                  at + ': CLOSE_WAIT sockets of process ' + owner,
                  'on ' + portSide,
                  'keep growing: the lowest count of the last ' + H(cfg.closeWaitGrowingWindow) + ' is {{ $value | humanize }} above the typical count',
                  H(cfg.closeWaitGrowingBaselineOffset) + ' earlier (' + tv(tq(cwSum, dpp)) + ' now).',
                  'The peer closed these connections and the application never called close(): a leaked',
                  'connection, or a pool that is never released. Its workers or connection pool run out next (502/504).',
                ]),

          // A healthy application closes its end milliseconds after the peer's FIN. CLOSE_WAIT
          // sockets older than the exporter's stale threshold (default 60s) for 15 minutes are
          // leaks, even when the count is flat (a pool that reached its size, docs/incidents.md #6).
          alert('SockdiagCloseWaitStale',
                'instance_netns_direction_port_process:sockdiag_tcp_close_wait_stale_sockets:sum > 0',
                cfg.closeWaitStaleFor,
                'warning',
                'Stale CLOSE_WAIT sockets of {{ or $labels.process "(no owner)" }}' + summaryNs + ' on {{ $labels.direction }} port {{ $labels.port }} are never closed.',
                [
                  at + ': {{ $value | humanize }} CLOSE_WAIT sockets of process ' + owner,
                  'on ' + portSide,
                  "are older than the exporter's stale threshold; the oldest is",
                  tv(tq('sockdiag_tcp_close_wait_oldest_seconds', dpp, 'max'), 'humanizeDuration') + ' old.',
                  'The application leaks these connections (never closes them or never returns them to its pool).',
                ]),

          // ---- Listeners ---------------------------------------------------------------------
          // Peak (sampled every second during each poll) / backlog. A full accept queue shows
          // backlog + 1, i.e. slightly over 100%. 90% of the backlog at the peak of every poll
          // for 5 minutes: the process does not keep up with accept(). 5m skips a warming-up
          // deploy.
          alert('SockdiagListenQueueFull',
                'instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio >= %s' % q.num(cfg.listenQueueFullRatio),
                cfg.listenQueueFullFor,
                'critical',
                'The accept queue of {{ $labels.process }}' + summaryNs + ' on port {{ $labels.port }} is full.',
                [
                  at + ': the accept queue of {{ $labels.process }} listening on {{ $labels.address }}:{{ $labels.port }}',
                  'peaked at {{ $value | humanizePercentage }} of its backlog',
                  '(' + tv(tq('sockdiag_tcp_listen_queue_length', app, 'max')),
                  'connections waiting, backlog ' + tv(tq('sockdiag_tcp_listen_queue_limit', app, 'max')) + ')',
                  'for ' + H(cfg.listenQueueFullFor) + '. A full queue shows backlog+1 (over 100%): the kernel drops new connections',
                  'and clients time out. The process does not accept() fast enough.',
                ]),

          // Connections that sit in an accept queue in CLOSE_WAIT: the client gave up before
          // the server ever accepted them (docs/incidents.md #5, edge-triggered epoll that stops
          // accepting). A draining queue hands them to accept() within milliseconds; 10 minutes
          // means it is not draining. The process label comes from the listener on that port.
          alert('SockdiagListenerNotAccepting',
                |||
                  (
                      (instance_netns_port_state:sockdiag_tcp_unaccepted_sockets:sum{state="close_wait"} > 0)
                    + %(onp)s group_left (process)
                      (0 * topk %(byp)s (1, max %(bypp)s (%(len)s)))
                  )
                  or %(onp)s
                    instance_netns_port_state:sockdiag_tcp_unaccepted_sockets:sum{state="close_wait"} > 0
                ||| % {
                  onp: q.on(ns + ['port']),
                  byp: q.by(ns + ['port']),
                  bypp: q.by(ns + ['port', 'process']),
                  len: s('sockdiag_tcp_listen_queue_length'),
                },
                cfg.listenerNotAcceptingFor,
                'critical',
                'The listener on port {{ $labels.port }}' + summaryNs + ' stopped accepting; clients give up in its accept queue.',
                [
                  at + ': {{ $value | humanize }} connections to port {{ $labels.port }}',
                  '({{ or $labels.process "listener process unknown" }}) sit in CLOSE_WAIT in the accept queue: the clients gave up',
                  'before {{ or $labels.process "the server" }} ever accept()ed them, for ' + H(cfg.listenerNotAcceptingFor) + '. They have no file descriptor,',
                  'so lsof shows nothing. The accept loop is stuck or returns early (e.g. edge-triggered epoll not drained).',
                ]),

          // TcpExt ListenOverflows / ListenDrops are per network namespace and ListenOverflows
          // also counts retransmitted SYNs: alert on "rate > 0", never on a count. Listeners
          // that were at least half full in the last 10 minutes are named (one alert each); if
          // none was, a namespace-level alert. for: 10m > the 5m rate window: one burst does
          // not open a ticket.
          alert('SockdiagListenOverflows',
                |||
                  (
                      (instance_netns:sockdiag_tcp_listen_drops:rate5m > 0 or instance_netns:sockdiag_tcp_listen_overflows:rate5m > 0)
                    + %(on)s group_right ()
                      (0 * (max_over_time(instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio[%(win)s]) >= %(ratio)s))
                  )
                  or %(on)s
                    (instance_netns:sockdiag_tcp_listen_drops:rate5m > 0 or instance_netns:sockdiag_tcp_listen_overflows:rate5m > 0)
                ||| % {
                  on: q.on(ns),
                  win: cfg.listenOverflowsSuspectWindow,
                  ratio: q.num(cfg.listenOverflowsSuspectRatio),
                },
                cfg.listenOverflowsFor,
                'warning',
                'The kernel keeps dropping connections at full accept queues{{ if $labels.port }} (port {{ $labels.port }}){{ end }}' + summaryNs + '.',
                [
                  at + ': TcpExt ListenDrops/ListenOverflows are rising ({{ printf "%.3f" $value }}/s over 5 minutes, for ' + H(cfg.listenOverflowsFor) + ').',
                  '{{ if $labels.port }}Suspect listener: {{ $labels.process }} on {{ $labels.address }}:{{ $labels.port }}, whose accept queue was at least ' + share(cfg.listenOverflowsSuspectRatio) + ' full in the last ' + H(cfg.listenOverflowsSuspectWindow) + '.{{ else }}No listener was seen more than ' + share(cfg.listenOverflowsSuspectRatio) + ' full: the queues overflow in bursts shorter than the poll interval.{{ end }}',
                  'ListenOverflows also counts retransmitted SYNs, so read the rate as "happening", not as lost connections.',
                ]),

          // UNIX stream listeners (php-fpm, gunicorn, uwsgi): the same peak / backlog ratio as
          // TCP. When every php-fpm worker is busy the socket's queue fills and nginx answers
          // 502 (connect() gets EAGAIN). 5m skips a warming-up pool.
          alert('SockdiagUnixListenQueueFull',
                'instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio >= %s' % q.num(cfg.unixListenQueueFullRatio),
                cfg.unixListenQueueFullFor,
                'critical',
                'The accept queue of {{ or $labels.process "(no owner)" }}' + summaryNs + ' on UNIX socket {{ or $labels.path "(unnamed)" }} is full.',
                [
                  at + ': the accept queue of {{ or $labels.process "(no owner)" }} listening on UNIX socket {{ or $labels.path "(unnamed)" }}',
                  'peaked at {{ $value | humanizePercentage }} of its backlog',
                  '(' + tv(tq('sockdiag_unix_listen_queue_length', ns + ['path', 'process'], 'max')),
                  'connections waiting, backlog ' + tv(tq('sockdiag_unix_listen_queue_limit', ns + ['path', 'process'], 'max')) + ')',
                  'for ' + H(cfg.unixListenQueueFullFor) + '. Every worker is busy: new connections wait, then fail (nginx answers 502).',
                  'For php-fpm: pm.max_children, listen.backlog and slow requests (the slowlog).',
                ]),

          // ---- UDP receivers ---------------------------------------------------------------------
          // A UDP socket whose receive buffer is full drops every datagram that arrives: statsd,
          // syslog, DNS, metrics agents lose data and nothing fails loudly. Any drop rate held
          // for 5m pages; a single burst (a deploy's restart) does not.
          alert('SockdiagUdpReceiveDrops',
                'instance_netns_direction_port_process:sockdiag_udp_drops:rate5m > ' + std.toString(cfg.udpReceiveDropsRate),
                cfg.udpReceiveDropsFor,
                'critical',
                'UDP receiver {{ or $labels.process "(no owner)" }}' + summaryNs + ' on port {{ $labels.port }} is dropping datagrams.',
                [
                  at + ': the UDP sockets of ' + '{{ or $labels.process "(no owner)" }}',
                  'on {{ if eq $labels.direction "inbound" }}local port{{ else }}connections to remote port{{ end }} {{ $labels.port }}',
                  'drop {{ $value | humanize }} datagrams per second',
                  '(receive queue ' + tv(tq('sockdiag_udp_receive_queue_bytes', ns + ['direction', 'port', 'process'], 'sum')),
                  'of ' + tv(tq('sockdiag_udp_receive_buffer_bytes', ns + ['direction', 'port', 'process'], 'sum')) + ' bytes)',
                  'for ' + H(cfg.udpReceiveDropsFor) + '. The receiver does not read fast enough or its buffer is too small (SO_RCVBUF, net.core.rmem_max).',
                ]),

          // ---- TIME_WAIT and ephemeral ports -------------------------------------------------
          // Local ports of ip_local_port_range in use toward one destination (any state,
          // TIME_WAIT included). At 100% connect() to it fails with EADDRNOTAVAIL (docs/incidents.md
          // #2).
          alert('SockdiagEphemeralPortsNearExhaustion',
                'instance_netns_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio > %s' % q.num(cfg.ephemeralPortsRatio),
                cfg.ephemeralPortsFor,
                'critical',
                'Local ports toward {{ $labels.remote_address }} port {{ $labels.remote_port }}' + summaryNs + ' are nearly exhausted.',
                [
                  at + ' uses {{ $value | humanizePercentage }} of its ephemeral port range',
                  '(' + tv(tq('sockdiag_tcp_ephemeral_ports_used', ns + ['remote_address', 'remote_port'], 'max')),
                  'of ' + tv(tq('sockdiag_tcp_ephemeral_port_range_size', ns, 'max')) + ' ports)',
                  'for connections to {{ $labels.remote_address }} port {{ $labels.remote_port }}, mostly TIME_WAIT after short-lived connections.',
                  'When it reaches 100%, new connections to that destination fail (EADDRNOTAVAIL).',
                ]),

          // TIME_WAIT of both families against net.ipv4.tcp_max_tw_buckets. Ports holding at
          // least a quarter of the namespace's TIME_WAIT are named (one alert each); otherwise
          // a namespace-level alert.
          alert('SockdiagTimeWaitNearMaxBuckets',
                |||
                  (
                      (instance_netns:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio > %(ratio)s)
                    + %(on)s group_right ()
                      (0 * (instance_netns_direction_port:sockdiag_tcp_time_wait_sockets_per_netns:ratio >= %(share)s))
                  )
                  or %(on)s
                    instance_netns:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio > %(ratio)s
                ||| % { on: q.on(ns), ratio: q.num(cfg.timeWaitBucketsRatio), share: q.num(cfg.timeWaitPortShare) },
                cfg.timeWaitBucketsFor,
                'warning',
                'TIME_WAIT sockets are close to net.ipv4.tcp_max_tw_buckets{{ if $labels.port }} ({{ $labels.direction }} port {{ $labels.port }}){{ end }}' + summaryNs + '.',
                [
                  at + ': TIME_WAIT sockets are at {{ $value | humanizePercentage }} of net.ipv4.tcp_max_tw_buckets',
                  '(' + tv(tq('instance_netns:sockdiag_tcp_time_wait_sockets:sum', ns)),
                  'of ' + tv(tq('sockdiag_sysctl_tcp_max_tw_buckets', ns, 'max')) + ').',
                  '{{ if $labels.port }}{{ $labels.direction }} port {{ $labels.port }} holds at least ' + share(cfg.timeWaitPortShare) + ' of them.{{ else }}No single port holds ' + share(cfg.timeWaitPortShare) + ' of them.{{ end }}',
                  'Beyond the limit the kernel skips TIME_WAIT for closing connections ("time wait bucket table overflow").',
                ]),

          alert('SockdiagTimeWaitBucketsOverflowing',
                |||
                  (
                      (instance_netns:sockdiag_tcp_time_wait_overflow:rate5m > 0)
                    + %(on)s group_right ()
                      (0 * (instance_netns_direction_port:sockdiag_tcp_time_wait_sockets_per_netns:ratio >= %(share)s))
                  )
                  or %(on)s
                    instance_netns:sockdiag_tcp_time_wait_overflow:rate5m > 0
                ||| % { on: q.on(ns), share: q.num(cfg.timeWaitPortShare) },
                cfg.timeWaitOverflowFor,
                'warning',
                'The TIME_WAIT bucket table is overflowing{{ if $labels.port }} ({{ $labels.direction }} port {{ $labels.port }}){{ end }}' + summaryNs + '.',
                [
                  at + ': TcpExt TCPTimeWaitOverflow is rising ({{ printf "%.3f" $value }}/s, for ' + H(cfg.timeWaitOverflowFor) + '): the host is at',
                  'net.ipv4.tcp_max_tw_buckets and closing connections skip TIME_WAIT (the kernel logs "time wait bucket table overflow").',
                  '{{ if $labels.port }}{{ $labels.direction }} port {{ $labels.port }} holds at least ' + share(cfg.timeWaitPortShare) + ' of the TIME_WAIT sockets.{{ else }}No single port holds ' + share(cfg.timeWaitPortShare) + ' of the TIME_WAIT sockets.{{ end }}',
                ]),

          // ---- The exporter itself -----------------------------------------------------------
          // One failed poll keeps the previous snapshot and is counted; alert only when polls
          // keep failing (for: 10m > the 5m rate window).
          alert('SockdiagPollErrors',
                'sum %s (rate(%s[5m])) > 0' % [q.by(host + ['stage']), s('sockdiag_poll_errors_total')],
                cfg.pollErrorsFor,
                'warning',
                'sockdiag_exporter polls keep failing at stage {{ $labels.stage }}.',
                [
                  '{{ $labels.instance }}: sockdiag_exporter polls fail at stage "{{ $labels.stage }}" ({{ printf "%.3f" $value }}/s over 5 minutes,',
                  'for ' + H(cfg.pollErrorsFor) + '). The exporter keeps serving its last good snapshot, so socket figures are stale or incomplete.',
                ]),

          // No successful poll for 10 minutes while the exporter is still being scraped (a
          // stuck or always failing poller). Assumes --poll.interval well under 10 minutes
          // (default 15s).
          alert('SockdiagPollStale',
                |||
                  (time() - %(ts)s)
                  and
                  changes(%(ts)s[%(win)s]) == 0
                ||| % { ts: s('sockdiag_last_poll_success_timestamp_seconds'), win: cfg.pollStaleWindow },
                cfg.pollStaleFor,
                'warning',
                'sockdiag_exporter has not completed a poll for ' + q.humanSum(cfg.pollStaleWindow, cfg.pollStaleFor) + '.',
                [
                  '{{ $labels.instance }} (job {{ $labels.job }}): the last successful sockdiag_exporter poll was {{ $value | humanizeDuration }} ago',
                  '(a huge value means never since start). /metrics is served from that old snapshot: every socket figure and',
                  'alert for this host is frozen.',
                ]),

          // The scrape itself fails: `up` of the jobs that sockdiagSelector picks.
          alert('SockdiagExporterDown',
                '%s == 0' % s('up'),
                cfg.exporterDownFor,
                'warning',
                'sockdiag_exporter on {{ $labels.instance }} cannot be scraped.',
                [
                  '{{ $labels.instance }} (job {{ $labels.job }}): Prometheus could not scrape sockdiag_exporter for ' + H(cfg.exporterDownFor) + '.',
                  'No socket metric and no sockdiag alert works for this host until it is back.',
                ]),

          // Sockets with an owner inode whose process was not found (process="unknown"):
          // missing CAP_SYS_PTRACE / CAP_DAC_READ_SEARCH, hidepid, or another PID namespace. A
          // few are normal races (a process exits between the dump and the /proc scan): at
          // least 10 sockets and 1%.
          alert('SockdiagAttributionDegraded',
                |||
                  max %(by)s (%(un)s) >= %(min)s
                  and %(on)s
                  instance_netns:sockdiag_unattributed_sockets_per_scanned:ratio > %(ratio)s
                ||| % {
                  by: q.by(ns),
                  on: q.on(ns),
                  un: s('sockdiag_unattributed_sockets'),
                  min: q.num(cfg.attributionMinSockets),
                  ratio: q.num(cfg.attributionMinRatio),
                },
                cfg.attributionFor,
                'info',
                'sockdiag_exporter cannot name the process of many sockets' + summaryNs + '.',
                [
                  at + ': {{ $value | humanize }} sockets have an owner whose process sockdiag_exporter could not find;',
                  'they show up as process="unknown"{{ range printf "topk(3, sum by (direction, port) (sockdiag_tcp_port_sockets{'
                  + std.join(',', [l + '=%q' for l in ns]) + ',process=\\"unknown\\"}))" '
                  + std.join(' ', ['$labels.' + l for l in ns])
                  + ' | query | sortByLabel "port" }}, {{ .Labels.direction }} port {{ .Labels.port }}: {{ .Value | humanize }}{{ end }}.',
                  'Per-process panels and alerts for this host are incomplete (usually missing capabilities or hidepid on /proc).',
                ]),
        ],
      },
    ],
  },
}
