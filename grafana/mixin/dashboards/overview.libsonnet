// sockdiag-overview: one host (or a few): states, CLOSE_WAIT by process/port with growth and
// age, accept queues (TCP and UNIX), never-accepted sockets, TIME_WAIT and ephemeral ports per
// destination, peers, queued bytes, kernel counters, the sysctls that explain them, the
// container behind each network namespace, and the exporter's own health.
local g = import '../lib/dashboard.libsonnet';
local q = import '../lib/promql.libsonnet';

function(cfg)
  local c = (import 'common.libsonnet')(cfg);
  local S = c.S, N = c.N, by = c.by, rate = c.rate, runbook = c.runbook, RI = c.RUNBOOK_INDEX;
  local t = g.target, th = g.thresholds;
  local cw = 'state="close_wait"', tw = 'state="time_wait"', EST = 'state="established"', LISTEN = 'state="listen"';
  local PROC = 'process=~"$process"', PORT = 'port=~"$port"', RECV = 'queue="receive"', SEND = 'queue="send"';
  local DPP = '{{process}} {{direction}} :{{port}} {{netns}} {{instance}}';
  local L = '{{process}} {{address}}:{{port}} {{netns}} {{instance}}';
  local U = '{{process}} {{path}} {{netns}} {{instance}}';
  local fill = th([['green', null], ['orange', 0.5], ['red', cfg.listenQueueFullRatio]]);
  local unixFill = th([['green', null], ['orange', 0.5], ['red', cfg.unixListenQueueFullRatio]]);
  local containerCols = { container_name: 'container', pod_namespace: 'namespace', pod_name: 'pod', container_id: 'container id', pod_uid: 'pod uid' };
  local hideCols = ['__name__', 'job', cfg.clusterLabel];
  local H = q.human;

  local panels = [
    g.row('Overview'),
    g.stat('ESTABLISHED',
           'TCP sockets in ESTABLISHED, IPv4 and IPv6, on the selected hosts and network namespaces.',
           'short',
           [t('sum(%s)' % N('sockdiag_tcp_sockets', [EST]), instant=true)],
           [RI]),
    g.stat('CLOSE_WAIT',
           'TCP sockets in CLOSE_WAIT: the peer closed, the local application has not '
           + 'called close() yet. Healthy sockets stay there for milliseconds; a count that only grows is a '
           + 'leak (see the CLOSE_WAIT row).',
           'short',
           [t('sum(%s)' % N('sockdiag_tcp_sockets', [cw]), instant=true)],
           [runbook('SockdiagCloseWaitGrowing')],
           thr=th([['green', null], ['orange', 100], ['red', 1000]])),
    g.stat('TIME_WAIT',
           'TCP sockets in TIME_WAIT (2*MSL = 60 s on Linux after the side that closed first). '
           + 'Each one pins a local port for its 4-tuple: see the TIME_WAIT row for destinations.',
           'short',
           [t('sum(%s)' % N('sockdiag_tcp_sockets', [tw]), instant=true)],
           [runbook('SockdiagTimeWaitNearMaxBuckets')]),
    g.stat('Listening sockets',
           'TCP sockets in LISTEN.',
           'short',
           [t('sum(%s)' % N('sockdiag_tcp_sockets', [LISTEN]), instant=true)],
           [runbook('SockdiagListenQueueFull')]),
    g.stat('Oldest CLOSE_WAIT',
           'Age of the oldest CLOSE_WAIT socket (tracked by socket cookie since the '
           + 'exporter first saw it). Milliseconds on a healthy host; minutes or hours mean leaked connections.',
           's',
           [t('max(%s)' % N('sockdiag_tcp_close_wait_oldest_seconds'), instant=true)],
           [runbook('SockdiagCloseWaitStale')],
           thr=th([['green', null], ['orange', 60], ['red', 600]])),
    g.stat('Last successful poll',
           "Seconds since the exporter's last successful sock_diag poll on the "
           + 'stalest selected host. Should stay below twice the poll interval (default 15 s).',
           's',
           [t('time() - min(%s)' % S('sockdiag_last_poll_success_timestamp_seconds'), instant=true)],
           [runbook('SockdiagPollStale')],
           thr=th([['green', null], ['orange', 60], ['red', 600]])),
    g.timeseries('TCP sockets by state',
                 'Every TCP socket by state (IPv4 + IPv6), stacked. Watch CLOSE_WAIT '
                 + '(application not closing), TIME_WAIT (connection churn), SYN_RECV (incoming handshakes, '
                 + 'SYN floods) and FIN_WAIT2 (peers that do not close, cut by tcp_fin_timeout).',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'state']), N('sockdiag_tcp_sockets')], '{{state}} {{netns}} {{instance}}')],
                 [RI],
                 w=24,
                 h=8,
                 stack=true,
                 legendRight=true),

    g.row('CLOSE_WAIT: which process, which port, which container'),
    g.timeseries('CLOSE_WAIT by process and port',
                 'CLOSE_WAIT sockets per owning process and port. inbound: '
                 + 'the local service port (clients closed first, e.g. Apache behind a proxy); outbound: the remote '
                 + 'port this process connects to (e.g. :3306 for a MySQL pool). process "" = no owner (still in '
                 + 'an accept queue), "unknown" = owner not found, "other" = folded by the cardinality cap.',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_port_sockets', [cw, PROC, PORT])], DPP)],
                 [runbook('SockdiagCloseWaitGrowing')]),
    g.timeseries('CLOSE_WAIT growth per hour',
                 'Trend of CLOSE_WAIT per process and port: least-squares slope '
                 + 'over the last 30 minutes, in sockets per hour (from the recording rule). A leak stays '
                 + 'positive; steady churn hovers around 0. SockdiagCloseWaitGrowing pages when the lowest count of '
                 + 'the last %s exceeds the median of %s earlier by max(%s, %s) with at least %s '
                   % [
                     H(cfg.closeWaitGrowingWindow),
                     H(cfg.closeWaitGrowingBaselineOffset),
                     q.num(cfg.closeWaitGrowingMinIncrease),
                     q.pct(cfg.closeWaitGrowingMinRelativeIncrease),
                     q.num(cfg.closeWaitGrowingMinSockets),
                   ]
                 + 'sockets, for %s.' % H(cfg.closeWaitGrowingFor),
                 'suffix:/h',
                 [t('deriv(%s[30m]) * 3600' % N('instance_netns_direction_port_process:sockdiag_tcp_close_wait_sockets:sum', [PROC, PORT]), DPP)],
                 [runbook('SockdiagCloseWaitGrowing')],
                 minv=null),
    g.timeseries('Oldest CLOSE_WAIT age',
                 'Age of the oldest CLOSE_WAIT socket per process and port. A healthy '
                 + "application closes within milliseconds of the peer's FIN; an age that grows with the clock is a "
                 + 'connection that will never be closed (a leak or a pool that is never released).',
                 's',
                 [t('max %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_close_wait_oldest_seconds', [PROC, PORT])], DPP)],
                 [runbook('SockdiagCloseWaitStale')],
                 thr=th([['green', null], ['red', 60]])),
    g.timeseries('Stale CLOSE_WAIT sockets',
                 "CLOSE_WAIT sockets older than the exporter's stale threshold "
                 + '(default 60 s) per process and port. Any value that stays is a leak: SockdiagCloseWaitStale '
                 + 'opens a ticket after %s.' % H(cfg.closeWaitStaleFor),
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_close_wait_stale_sockets', [PROC, PORT])], DPP)],
                 [runbook('SockdiagCloseWaitStale')]),
    g.bargauge('Top CLOSE_WAIT now',
               'The 10 process/port pairs with the most CLOSE_WAIT sockets right now '
               + '(the `netstat -antp | grep CLOSE_WAIT | awk | sort | uniq -c` of the incidents).',
               'short',
               [t('topk(10, sum %s (%s))' % [by(['netns', 'direction', 'port', 'process']), N('sockdiag_tcp_port_sockets', [cw, PROC, PORT])],
                  '{{process}} {{direction}} :{{port}} {{netns}}',
                  instant=true)],
               [runbook('SockdiagCloseWaitGrowing')],
               w=12,
               h=8),
    g.table('CLOSE_WAIT: which container',
            'CLOSE_WAIT sockets per network namespace, process and port, with '
            + 'the container (or pod: namespace, name and uid) that owns the namespace, from sockdiag_netns_info. Namespaces '
            + 'without a container (the host, ip netns) show no container.',
            'short',
            [t(c.whichContainer('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_port_sockets', [cw, PROC, PORT])]), ref='A', table=true)],
            [runbook('SockdiagCloseWaitGrowing')],
            { Value: 'CLOSE_WAIT' } + containerCols,
            w=12,
            h=8,
            sortBy='CLOSE_WAIT',
            exclude=hideCols),
    g.stat('Keepalive and FIN timers',
           'Sysctls that bound how long a dead or half-closed connection lingers: '
           + 'net.ipv4.tcp_keepalive_time and tcp_keepalive_intvl (a dead peer is detected after time + intvl * '
           + 'probes), and tcp_fin_timeout (how long the PEER of a CLOSE_WAIT socket waits in FIN_WAIT2). Only the '
           + 'application closes CLOSE_WAIT; keepalive (sockets with SO_KEEPALIVE) can at most reset one whose '
           + 'peer is gone, the descriptor stays until close().',
           's',
           [
             t('max(%s)' % N('sockdiag_sysctl_tcp_keepalive_time_seconds'), 'keepalive_time', 'A', instant=true),
             t('max(%s)' % N('sockdiag_sysctl_tcp_keepalive_intvl_seconds'), 'keepalive_intvl', 'B', instant=true),
             t('max(%s)' % N('sockdiag_sysctl_tcp_fin_timeout_seconds'), 'fin_timeout', 'C', instant=true),
           ],
           [runbook('SockdiagCloseWaitStale')],
           w=8,
           h=8),
    g.stat('Keepalive probes',
           "net.ipv4.tcp_keepalive_probes: unanswered probes before a dead peer's "
           + 'connection is reset.',
           'none',
           [t('max(%s)' % N('sockdiag_sysctl_tcp_keepalive_probes'), 'keepalive_probes', instant=true)],
           [runbook('SockdiagCloseWaitStale')],
           w=4,
           h=8),

    g.row('Listeners: accept queues'),
    g.timeseries('Accept queue fill (waiting / backlog)',
                 "Connections waiting in each listener's accept queue "
                 + '(LISTEN Recv-Q) divided by its backlog (LISTEN Send-Q), at poll time. These are connection '
                 + 'counts, not bytes. A full queue shows backlog + 1, so a full queue reads slightly over 100%: '
                 + 'the kernel then drops handshakes (ListenOverflows).',
                 'percentunit',
                 [t(N('instance_netns_address_port_process:sockdiag_tcp_listen_queue_length_per_limit:ratio', [PORT]), L)],
                 [runbook('SockdiagListenQueueFull')],
                 thr=fill),
    g.timeseries('Accept queue peak fill',
                 'Highest accept-queue length seen during each poll interval '
                 + '(sampled every second) divided by the backlog. Catches bursts that the poll-time value misses. '
                 + 'SockdiagListenQueueFull pages when it stays at %s or more for %s.' % [q.pct(cfg.listenQueueFullRatio), H(cfg.listenQueueFullFor)],
                 'percentunit',
                 [t(N('instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio', [PORT]), L)],
                 [runbook('SockdiagListenQueueFull')],
                 thr=fill),
    g.table('Listeners now',
            'Every listening socket: connections waiting (Recv-Q), peak during the last poll '
            + 'interval, and backlog (Send-Q, the limit passed to listen() capped by net.core.somaxconn).',
            'short',
            [
              t('max %s (%s)' % [by(['instance', 'netns', 'address', 'port', 'process']), N('sockdiag_tcp_listen_queue_length', [PORT])], ref='A', table=true),
              t('max %s (%s)' % [by(['instance', 'netns', 'address', 'port', 'process']), N('sockdiag_tcp_listen_queue_peak', [PORT])], ref='B', table=true),
              t('max %s (%s)' % [by(['instance', 'netns', 'address', 'port', 'process']), N('sockdiag_tcp_listen_queue_limit', [PORT])], ref='C', table=true),
            ],
            [runbook('SockdiagListenQueueFull')],
            { 'Value #A': 'waiting', 'Value #B': 'peak', 'Value #C': 'backlog' },
            w=12,
            h=8,
            sortBy='peak',
            exclude=[cfg.clusterLabel]),
    g.table('Accept queues: which container',
            'Peak accept-queue fill (peak / backlog) of every listener, with the '
            + 'container (or pod: namespace, name and uid) that owns its network namespace, from sockdiag_netns_info.',
            'percentunit',
            [t(c.whichContainer(N('instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio', [PORT])), ref='A', table=true)],
            [runbook('SockdiagListenQueueFull')],
            { Value: 'peak fill' } + containerCols,
            w=12,
            h=8,
            sortBy='peak fill',
            exclude=hideCols),
    g.timeseries('Never accepted sockets',
                 'Connections still in an accept queue (inode 0, no process owns them '
                 + 'yet) per listening port. established: waiting for accept(). close_wait: the client gave up '
                 + 'before the server accepted it; lsof cannot see these. close_wait that stays means the '
                 + 'listener stopped accepting (SockdiagListenerNotAccepting).',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'port', 'state']), N('sockdiag_tcp_unaccepted_sockets', [PORT])],
                    '{{state}} :{{port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagListenerNotAccepting')]),
    g.timeseries('Listen overflows and drops',
                 'Kernel counters TcpExt ListenOverflows (accept queue full) and '
                 + 'ListenDrops (every dropped incoming handshake, overflows included), per second. Per network '
                 + 'namespace, not per port: use the fill panels to find the listener. ListenOverflows also counts '
                 + 'retransmitted SYNs: read it as happening / not happening.',
                 'cps',
                 [
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_listen_overflows_total')], 'overflows {{netns}} {{instance}}', 'A'),
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_listen_drops_total')], 'drops {{netns}} {{instance}}', 'B'),
                 ],
                 [runbook('SockdiagListenOverflows')],
                 w=8),
    g.stat('Backlog limits',
           'net.core.somaxconn caps every listen() backlog (TCP and UNIX); net.ipv4.tcp_max_syn_backlog '
           + 'bounds half-open (SYN_RECV) connections per listener.',
           'none',
           [
             t('max(%s)' % N('sockdiag_sysctl_somaxconn'), 'somaxconn', 'A', instant=true),
             t('max(%s)' % N('sockdiag_sysctl_tcp_max_syn_backlog'), 'tcp_max_syn_backlog', 'B', instant=true),
           ],
           [runbook('SockdiagListenQueueFull')],
           w=4),

    g.row('UNIX listeners: php-fpm, gunicorn, uwsgi'),
    g.timeseries('UNIX accept queue peak fill',
                 'Highest accept-queue length of each UNIX stream listener during '
                 + 'each poll interval (sampled every second) divided by its backlog (ss -xl: Recv-Q / Send-Q). '
                 + 'A full queue reads backlog + 1; then connect() fails and nginx answers 502. '
                 + 'SockdiagUnixListenQueueFull pages at %s or more for %s.' % [q.pct(cfg.unixListenQueueFullRatio), H(cfg.unixListenQueueFullFor)],
                 'percentunit',
                 [t(N('instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio'), U)],
                 [runbook('SockdiagUnixListenQueueFull')],
                 thr=unixFill),
    g.table('UNIX listeners now',
            'Every UNIX stream listener: connections waiting, peak during the last poll '
            + 'interval and backlog (php-fpm listen.backlog, gunicorn --backlog, uwsgi --listen, capped by '
            + 'net.core.somaxconn). path @name is an abstract socket.',
            'short',
            [
              t('max %s (%s)' % [by(['instance', 'netns', 'path', 'process']), N('sockdiag_unix_listen_queue_length')], ref='A', table=true),
              t('max %s (%s)' % [by(['instance', 'netns', 'path', 'process']), N('sockdiag_unix_listen_queue_peak')], ref='B', table=true),
              t('max %s (%s)' % [by(['instance', 'netns', 'path', 'process']), N('sockdiag_unix_listen_queue_limit')], ref='C', table=true),
            ],
            [runbook('SockdiagUnixListenQueueFull')],
            { 'Value #A': 'waiting', 'Value #B': 'peak', 'Value #C': 'backlog' },
            w=12,
            h=8,
            sortBy='peak',
            exclude=[cfg.clusterLabel]),
    g.timeseries('UNIX sockets by type and state',
                 'UNIX sockets per type (stream, seqpacket, dgram) and state '
                 + '(listen, established, others).',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'type', 'state']), N('sockdiag_unix_sockets')], '{{type}} {{state}} {{netns}} {{instance}}')],
                 [runbook('SockdiagUnixListenQueueFull')]),
    g.table('UNIX listeners: which container',
            'Peak accept-queue fill of every UNIX stream listener, with the '
            + 'container (or pod: namespace, name and uid) that owns its network namespace, from sockdiag_netns_info.',
            'percentunit',
            [t(c.whichContainer(N('instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio')), ref='A', table=true)],
            [runbook('SockdiagUnixListenQueueFull')],
            { Value: 'peak fill' } + containerCols,
            w=12,
            h=8,
            sortBy='peak fill',
            exclude=hideCols),

    g.row('UDP receivers'),
    g.timeseries('UDP datagrams dropped',
                 'Datagrams dropped per second by the UDP sockets of each direction, port and '
                 + 'process (ss -uam skmem d): mostly a receive buffer that was full. inbound: a receiver, '
                 + 'its local port; outbound: a connected client, the remote port. '
                 + 'SockdiagUdpReceiveDrops pages when any drop rate lasts %s.' % H(cfg.udpReceiveDropsFor),
                 'pps',
                 [t(N('instance_netns_direction_port_process:sockdiag_udp_drops:rate5m', [PROC, PORT]), DPP)],
                 [runbook('SockdiagUdpReceiveDrops')]),
    g.timeseries('UDP receive queue fill',
                 'Bytes in the receive queues over the receive buffers (ss -uam skmem r / rb), '
                 + 'per direction, port and process. Near 100% the next datagrams are dropped.',
                 'percentunit',
                 [t(N('instance_netns_direction_port_process:sockdiag_udp_receive_queue_bytes_per_buffer:ratio', [PROC, PORT]), DPP)],
                 [runbook('SockdiagUdpReceiveDrops')],
                 thr=th([['green', null], ['orange', 0.5], ['red', 0.9]])),
    g.table('UDP receivers: which container',
            'Drop rate of every UDP (direction, port, process) that dropped in the last 5 minutes, '
            + 'with the container (and pod uid) that owns its network namespace, from sockdiag_netns_info.',
            'pps',
            [t(c.whichContainer(N('instance_netns_direction_port_process:sockdiag_udp_drops:rate5m') + ' > 0'), ref='A', table=true)],
            [runbook('SockdiagUdpReceiveDrops')],
            { Value: 'drops per second' } + containerCols,
            w=12,
            h=8,
            sortBy='drops per second',
            exclude=hideCols),
    g.timeseries('UDP sockets',
                 'UDP sockets per address family, bound or connected.',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'family']), N('sockdiag_udp_sockets')], '{{family}} {{netns}} {{instance}}')],
                 [runbook('SockdiagUdpReceiveDrops')]),

    g.row('TIME_WAIT and ephemeral ports'),
    g.timeseries('TIME_WAIT against tcp_max_tw_buckets',
                 'TIME_WAIT sockets (IPv4 + IPv6) and '
                 + 'net.ipv4.tcp_max_tw_buckets, per network namespace. At the limit the kernel skips TIME_WAIT '
                 + 'for closing connections and logs "time wait bucket table overflow".',
                 'short',
                 [
                   t('sum %s (%s)' % [by(['instance', 'netns']), N('sockdiag_tcp_sockets', [tw])], 'TIME_WAIT {{netns}} {{instance}}', 'A'),
                   t('max %s (%s)' % [by(['instance', 'netns']), N('sockdiag_sysctl_tcp_max_tw_buckets')], 'tcp_max_tw_buckets {{netns}} {{instance}}', 'B'),
                 ],
                 [runbook('SockdiagTimeWaitNearMaxBuckets')]),
    g.timeseries('TIME_WAIT by port',
                 'TIME_WAIT sockets per port. inbound: local service port (this host '
                 + "closed first, e.g. an API answering a client in a loop); outbound: remote port (this host's "
                 + 'client closed first).',
                 'short',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port']), N('sockdiag_tcp_port_sockets', [tw, PORT])],
                    '{{direction}} :{{port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagTimeWaitNearMaxBuckets')]),
    g.timeseries('Ephemeral ports used per destination (share of range)',
                 'Local ports of '
                 + 'net.ipv4.ip_local_port_range in use toward each of the top destinations (any state, TIME_WAIT '
                 + 'included), divided by the size of the range. At 100% connect() to that destination fails '
                 + 'with EADDRNOTAVAIL; SockdiagEphemeralPortsNearExhaustion pages above %s for %s.' % [q.pct(cfg.ephemeralPortsRatio), H(cfg.ephemeralPortsFor)],
                 'percentunit',
                 [t(N('instance_netns_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio'),
                    '{{remote_address}}:{{remote_port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagEphemeralPortsNearExhaustion')],
                 thr=th([['green', null], ['orange', 0.5], ['red', cfg.ephemeralPortsRatio]]),
                 maxv=1),
    g.timeseries('Ephemeral ports used per destination',
                 'Local ports in use toward each top destination, with '
                 + 'the size of the ephemeral port range as the ceiling.',
                 'short',
                 [
                   t('max %s (%s)' % [by(['instance', 'netns', 'remote_address', 'remote_port']), N('sockdiag_tcp_ephemeral_ports_used')],
                     '{{remote_address}}:{{remote_port}} {{netns}} {{instance}}',
                     'A'),
                   t('max %s (%s)' % [by(['instance', 'netns']), N('sockdiag_tcp_ephemeral_port_range_size')], 'port range size {{netns}} {{instance}}', 'B'),
                 ],
                 [runbook('SockdiagEphemeralPortsNearExhaustion')]),
    g.stat('TIME_WAIT sysctls',
           'net.ipv4.tcp_tw_reuse (0 off, 1 on, 2 loopback only: lets connect() reuse a '
           + 'TIME_WAIT port for a new outgoing connection), tcp_max_tw_buckets, the ephemeral port range size '
           + 'and tcp_fin_timeout.',
           'none',
           [
             t('max(%s)' % N('sockdiag_sysctl_tcp_tw_reuse'), 'tcp_tw_reuse', 'A', instant=true),
             t('max(%s)' % N('sockdiag_sysctl_tcp_max_tw_buckets'), 'tcp_max_tw_buckets', 'B', instant=true),
             t('max(%s)' % N('sockdiag_tcp_ephemeral_port_range_size'), 'ephemeral ports', 'C', instant=true),
             t('max(%s)' % N('sockdiag_sysctl_tcp_fin_timeout_seconds'), 'tcp_fin_timeout', 'D', instant=true),
           ],
           [runbook('SockdiagTimeWaitNearMaxBuckets')],
           w=8,
           h=6,
           overrides=[g.unitOverride('B', 'short'), g.unitOverride('C', 'short'), g.unitOverride('D', 's')]),
    g.timeseries('TIME_WAIT bucket overflows',
                 'TcpExt TCPTimeWaitOverflow per second: connections that closed '
                 + 'without TIME_WAIT because tcp_max_tw_buckets was reached.',
                 'cps',
                 [t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_time_wait_overflow_total')], 'overflows {{netns}} {{instance}}')],
                 [runbook('SockdiagTimeWaitBucketsOverflowing')],
                 w=8,
                 h=6),
    g.table('TIME_WAIT: which container',
            'TIME_WAIT sockets per network namespace and port, with the container '
            + '(or pod: namespace, name and uid) that owns the namespace, from sockdiag_netns_info: the side that closed first.',
            'short',
            [t(c.whichContainer('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port']), N('sockdiag_tcp_port_sockets', [tw, PORT])]), ref='A', table=true)],
            [runbook('SockdiagTimeWaitNearMaxBuckets')],
            { Value: 'TIME_WAIT' } + containerCols,
            w=8,
            h=6,
            sortBy='TIME_WAIT',
            exclude=hideCols),

    g.row('Peers and connection churn'),
    g.timeseries('Top peers',
                 'Sockets per remote address for the top peers (the exporter keeps the top K '
                 + 'and folds the rest into "other"). A single peer with a large, churning count is often a '
                 + 'client in a loop (e.g. a container behind the Docker bridge gateway).',
                 'short',
                 [t('topk(10, sum %s (%s))' % [by(['instance', 'netns', 'remote_address']), N('sockdiag_tcp_peer_sockets')],
                    '{{remote_address}} {{netns}} {{instance}}')],
                 [runbook('SockdiagTimeWaitNearMaxBuckets')]),
    g.bargauge('Peers by state now',
               'The 10 largest (peer, state) pairs right now.',
               'short',
               [t('topk(10, sum %s (%s))' % [by(['netns', 'remote_address', 'state']), N('sockdiag_tcp_peer_sockets')],
                  '{{remote_address}} {{state}} {{netns}}',
                  instant=true)],
               [runbook('SockdiagTimeWaitNearMaxBuckets')]),
    g.timeseries('Connections opened per second',
                 'Tcp ActiveOpens (connect() from this host) and PassiveOpens '
                 + '(accepted handshakes) per second: connection churn. TIME_WAIT is roughly opens per second '
                 + 'times 60 s on the side that closes first.',
                 'cps',
                 [
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_active_opens_total')], 'active (outgoing) {{netns}} {{instance}}', 'A'),
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_passive_opens_total')], 'passive (incoming) {{netns}} {{instance}}', 'B'),
                 ],
                 [RI],
                 w=8),
    g.timeseries('Connections aborted per second',
                 'TcpExt TCPAbortOnTimeout (retransmissions or keepalive '
                 + 'probes exhausted: dead peers) and TCPAbortOnClose (closed with unread data: a reset sent to '
                 + 'the peer).',
                 'cps',
                 [
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_abort_on_timeout_total')], 'on timeout {{netns}} {{instance}}', 'A'),
                   t('sum %s (%s)' % [by(['instance', 'netns']), rate('sockdiag_tcp_abort_on_close_total')], 'on close {{netns}} {{instance}}', 'B'),
                 ],
                 [RI],
                 w=8),
    g.table('Connection churn: which container',
            'Connections opened per second (ActiveOpens + PassiveOpens) per '
            + 'network namespace, with the container (or pod: namespace, name and uid) that owns it: the looping caller of '
            + 'a TIME_WAIT storm (docs/incidents.md #4).',
            'cps',
            [t(c.whichContainer('sum %s (%s) + %s sum %s (%s)' % [
              by(['instance', 'netns']),
              rate('sockdiag_tcp_active_opens_total'),
              c.on(['instance', 'netns']),
              by(['instance', 'netns']),
              rate('sockdiag_tcp_passive_opens_total'),
            ]), ref='A', table=true)],
            [runbook('SockdiagTimeWaitNearMaxBuckets')],
            { Value: 'opens/s' } + containerCols,
            w=8,
            h=8,
            sortBy='opens/s',
            exclude=hideCols),

    g.row('Queued bytes'),
    g.timeseries('Unread bytes (receive queues)',
                 'Bytes received but not read by the application, per '
                 + 'process and port (non-LISTEN sockets). A CLOSE_WAIT socket whose EOF was never read counts 1 '
                 + 'for the FIN; sockets in an accept queue hold the unread request (process "").',
                 'bytes',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_queued_bytes', [RECV, PROC, PORT])], DPP)],
                 [runbook('SockdiagListenerNotAccepting')]),
    g.timeseries('Unsent bytes (send queues)',
                 'Bytes written by the application and not yet acknowledged by '
                 + 'the peer, per process and port: a slow or stalled peer.',
                 'bytes',
                 [t('sum %s (%s)' % [by(['instance', 'netns', 'direction', 'port', 'process']), N('sockdiag_tcp_queued_bytes', [SEND, PROC, PORT])], DPP)],
                 [RI]),

    g.row('sockdiag_exporter health'),
    g.timeseries('Poll duration',
                 'Duration of the last sock_diag poll (netlink dump, process scan, '
                 + 'aggregation). Scrapes do not wait for it.',
                 's',
                 [t('max %s (%s)' % [by(['instance']), S('sockdiag_poll_duration_seconds')], '{{instance}}')],
                 [runbook('SockdiagPollStale')],
                 w=8),
    g.timeseries('Poll errors by stage',
                 'Failed polls per second by stage. A failed poll keeps the previous '
                 + 'snapshot, so figures freeze instead of dropping to zero.',
                 'cps',
                 [t('sum %s (rate(%s[$__rate_interval]))' % [by(['instance', 'stage']), S('sockdiag_poll_errors_total')], '{{stage}} {{instance}}')],
                 [runbook('SockdiagPollErrors')],
                 w=8),
    g.timeseries('Time since last successful poll',
                 'Seconds since the last successful poll. Should stay '
                 + 'below twice the poll interval.',
                 's',
                 [t('time() - max %s (%s)' % [by(['instance']), S('sockdiag_last_poll_success_timestamp_seconds')], '{{instance}}')],
                 [runbook('SockdiagPollStale')],
                 w=8,
                 thr=th([['green', null], ['red', 600]])),
    g.timeseries('Scrape status',
                 'up: 1 when Prometheus scraped the exporter, 0 when the scrape failed.',
                 'none',
                 [t(S('up'), '{{instance}}')],
                 [runbook('SockdiagExporterDown')],
                 w=8,
                 maxv=1),
    g.timeseries('Sockets scanned per poll',
                 'Sockets in the last sock_diag dump (all states).',
                 'short',
                 [t('max %s (%s)' % [by(['instance']), S('sockdiag_sockets_scanned')], '{{instance}}')],
                 [RI],
                 w=8),
    g.timeseries('Attribution and folding',
                 'unattributed: sockets with an owner inode whose process was not '
                 + 'found (process="unknown"; missing capabilities or hidepid). folded: label values folded '
                 + 'into "other" by the cardinality caps, per label (netns: namespaces folded into netns="other"). '
                 + 'anomalies folded: CLOSE_WAIT piles, full queues or TIME_WAIT storms beyond twice a cap, '
                 + 'which lost their labels: raise that cap.',
                 'short',
                 [
                   t('max %s (%s)' % [by(['instance', 'netns']), N('sockdiag_unattributed_sockets')], 'unattributed {{netns}} {{instance}}', 'A'),
                   t('max %s (%s)' % [by(['instance', 'label']), S('sockdiag_folded_label_values')], 'folded {{label}} {{instance}}', 'B'),
                   t('sum %s (%s)' % [by(['instance', 'kind']), N('sockdiag_folded_anomalies')], 'anomalies folded {{kind}} {{instance}}', 'C'),
                 ],
                 [runbook('SockdiagAttributionDegraded')],
                 w=8),
    g.table('Network namespaces',
            'Every network namespace the exporter samples (sockdiag_netns_info): its '
            + 'netns label, inode, container id and name, pod namespace, name and uid, container runtime, Compose project and service.',
            'none',
            [t('max %s (%s)' % [by(['instance', 'netns', 'inode', 'container_id', 'container_name', 'pod_namespace', 'pod_name', 'pod_uid', 'runtime', 'compose_project', 'compose_service']), N('sockdiag_netns_info')], ref='A', table=true)],
            [RI],
            { Value: 'info' },
            w=16,
            h=6,
            exclude=[cfg.clusterLabel]),
    g.timeseries('Network namespaces not sampled',
                 'Namespaces the exporter found but could not sample, by '
                 + 'reason: permission (no CAP_SYS_ADMIN/CAP_SYS_PTRACE: own namespace only) or vanished '
                 + '(gone between discovery and sampling).',
                 'short',
                 [t('max %s (%s)' % [by(['instance', 'reason']), S('sockdiag_netns_skipped')], '{{reason}} {{instance}}')],
                 [RI],
                 w=8,
                 h=6),
    g.table('Exporter build',
            'Version and revision of sockdiag_exporter per host.',
            'none',
            [t('max %s (%s)' % [by(['instance', 'version', 'revision']), S('sockdiag_build_info')], ref='A', table=true)],
            [RI],
            { Value: 'info' },
            w=12,
            h=6,
            exclude=[cfg.clusterLabel]),
    g.table('Firing sockdiag alerts',
            'sockdiag alerts firing now for the selected hosts (Prometheus ALERTS '
            + 'series).',
            'none',
            [t('max %s (%s)' % [
              by(['alertname', 'severity', 'instance', 'netns', 'direction', 'port', 'process', 'path', 'remote_address', 'remote_port']),
              S('ALERTS', ['alertname=~"Sockdiag.+"', 'alertstate="firing"']),
            ], ref='A', table=true)],
            [RI],
            { Value: 'firing' },
            w=12,
            h=6,
            exclude=[cfg.clusterLabel]),
  ];

  local variables = c.variables([
    g.queryVar('process',
               'Process',
               'label_values(sockdiag_tcp_port_sockets{%s}, process)' % std.join(',', c.scope + ['netns=~"$netns"']),
               '.*',
               'Owning process (comm). All includes sockets without an owner (process="").'),
    g.queryVar('port',
               'Port',
               'label_values(sockdiag_tcp_port_sockets{%s}, port)' % std.join(',', c.scope + ['netns=~"$netns"']),
               '.*',
               'Local service port (inbound) or remote port (outbound).'),
  ]);

  g.dashboard(cfg,
              c.uid('overview'),
              'TCP and UNIX sockets overview',
              'Socket states of one host (or a few) from sockdiag_exporter, per network namespace and container: '
              + 'CLOSE_WAIT by process and port, TCP and UNIX accept queues, TIME_WAIT and ephemeral ports per '
              + 'destination, kernel counters and the sysctls that explain them.',
              panels,
              variables,
              [g.dashLink('Fleet', c.uid('fleet'), 'Every host'), RI])
