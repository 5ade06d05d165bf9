// sockdiag-fleet: every host of a Prometheus: top hosts, namespaces, listeners and
// destinations, built on the recording rules (rules/rules.libsonnet).
local g = import '../lib/dashboard.libsonnet';
local q = import '../lib/promql.libsonnet';

function(cfg)
  local c = (import 'common.libsonnet')(cfg);
  local S = c.S, N = c.N, by = c.by, runbook = c.runbook, RI = c.RUNBOOK_INDEX;
  local t = g.target, th = g.thresholds;
  local FIRING = ['alertname=~"Sockdiag.+"', 'alertstate="firing"'];
  local R = 'instance_netns_direction_port_process:sockdiag_tcp_close_wait_sockets:sum';
  local NI = '{{netns}} {{instance}}';
  local containerCols = { container_name: 'container', container_id: 'container id', pod_uid: 'pod uid' };

  local panels = [
    g.row('Fleet'),
    g.stat('Hosts reporting', "Hosts whose sockdiag_exporter is scraped.", 'short',
           [t('count(%s)' % S('sockdiag_build_info'), instant=true)], [RI]),
    g.stat('Hosts down', 'Hosts whose sockdiag_exporter scrape fails (up == 0).', 'short',
           [t('count(%s == 0) or vector(0)' % S('up'), instant=true)],
           [runbook('SockdiagExporterDown')], thr=th([['green', null], ['red', 1]])),
    g.stat('Hosts with stale polls', 'Hosts whose exporter has not completed a poll in 10 minutes.', 'short',
           [t('count(changes(%s[10m]) == 0) or vector(0)' % S('sockdiag_last_poll_success_timestamp_seconds'), instant=true)],
           [runbook('SockdiagPollStale')], thr=th([['green', null], ['orange', 1]])),
    g.stat('Critical sockdiag alerts', 'sockdiag alerts with severity critical firing now (pages).', 'short',
           [t('count(%s) or vector(0)' % S('ALERTS', FIRING + ['severity="critical"']), instant=true)],
           [RI], thr=th([['green', null], ['red', 1]])),
    g.stat('Warning sockdiag alerts', 'sockdiag alerts with severity warning firing now (tickets).', 'short',
           [t('count(%s) or vector(0)' % S('ALERTS', FIRING + ['severity="warning"']), instant=true)],
           [RI], thr=th([['green', null], ['orange', 1]])),
    g.stat('CLOSE_WAIT in the fleet', 'CLOSE_WAIT sockets on all selected hosts and network namespaces.', 'short',
           [t('sum(%s)' % N('instance_netns:sockdiag_tcp_close_wait_sockets:sum'), instant=true)],
           [runbook('SockdiagCloseWaitGrowing')]),
    g.timeseries('Sockets by state across the fleet', 'Sum over the selected hosts of every TCP state '
                                                      + '(recording rule instance_netns_state:sockdiag_tcp_sockets:sum).', 'short',
                 [t('sum %s (%s)' % [by(['state']), N('instance_netns_state:sockdiag_tcp_sockets:sum')], '{{state}}')],
                 [RI], w=24, stack=true, legendRight=true),

    g.row('Hosts and network namespaces'),
    g.table('Hosts and namespaces now', 'One line per host and network namespace: sockets, CLOSE_WAIT (and '
                                        + 'never-accepted CLOSE_WAIT), stale CLOSE_WAIT, TIME_WAIT against tcp_max_tw_buckets, '
                                        + 'fullest TCP and UNIX accept queue (peak / backlog), highest ephemeral port use toward one '
                                        + 'destination, listen drops per second. Sort by any column.', 'short',
            [t(N('instance_netns:sockdiag_tcp_sockets:sum'), ref='A', table=true),
             t(N('instance_netns:sockdiag_tcp_close_wait_sockets:sum'), ref='B', table=true),
             t(N('instance_netns:sockdiag_tcp_close_wait_stale_sockets:sum'), ref='C', table=true),
             t(N('instance_netns:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio'), ref='D', table=true),
             t(N('instance_netns:sockdiag_tcp_listen_queue_peak_per_limit:max'), ref='E', table=true),
             t(N('instance_netns:sockdiag_tcp_ephemeral_ports_used_per_range:max'), ref='F', table=true),
             t(N('instance_netns:sockdiag_tcp_listen_drops:rate5m'), ref='G', table=true),
             t(N('instance_netns:sockdiag_tcp_unaccepted_close_wait_sockets:sum'), ref='H', table=true),
             t(N('instance_netns:sockdiag_unix_listen_queue_peak_per_limit:max'), ref='I', table=true)],
            [RI],
            { 'Value #A': 'sockets', 'Value #B': 'CLOSE_WAIT', 'Value #C': 'stale CLOSE_WAIT',
              'Value #D': 'TIME_WAIT / max', 'Value #E': 'fullest queue', 'Value #F': 'ephemeral max',
              'Value #G': 'listen drops/s', 'Value #H': 'never-accepted CLOSE_WAIT', 'Value #I': 'fullest UNIX queue' },
            w=24, h=10, sortBy='CLOSE_WAIT', exclude=['__name__', cfg.clusterLabel],
            overrides=[g.columnUnit('TIME_WAIT / max', 'percentunit'), g.columnUnit('fullest queue', 'percentunit'),
                       g.columnUnit('ephemeral max', 'percentunit'), g.columnUnit('listen drops/s', 'cps'),
                       g.columnUnit('fullest UNIX queue', 'percentunit')]),

    g.row('CLOSE_WAIT across the fleet'),
    g.timeseries('Top 10 namespaces by CLOSE_WAIT', 'Hosts and network namespaces with the most CLOSE_WAIT sockets.', 'short',
                 [t('topk(10, %s)' % N('instance_netns:sockdiag_tcp_close_wait_sockets:sum'), NI)],
                 [runbook('SockdiagCloseWaitGrowing')]),
    g.timeseries('Top 10 namespaces by CLOSE_WAIT growth', 'Fastest growing CLOSE_WAIT per host and network namespace: '
                                                           + 'least-squares slope over 30 minutes, sockets per hour (recording rule '
                                                           + 'instance_netns:sockdiag_tcp_close_wait_sockets:deriv30m).', 'suffix:/h',
                 [t('topk(10, %s * 3600)' % N('instance_netns:sockdiag_tcp_close_wait_sockets:deriv30m'), NI)],
                 [runbook('SockdiagCloseWaitGrowing')], minv=null),
    g.timeseries('Top 10 process/port by CLOSE_WAIT', 'The process and port pairs with the most CLOSE_WAIT '
                                                      + 'sockets in the fleet (inbound: local service port, outbound: remote port).', 'short',
                 [t('topk(10, %s)' % N(R), '{{process}} {{direction}} :{{port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagCloseWaitGrowing')]),
    g.timeseries('Top 10 process/port by stale CLOSE_WAIT', "Leaked CLOSE_WAIT sockets (older than the "
                                                            + "exporter's stale threshold) per process and port.", 'short',
                 [t('topk(10, %s)' % N('instance_netns_direction_port_process:sockdiag_tcp_close_wait_stale_sockets:sum'),
                    '{{process}} {{direction}} :{{port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagCloseWaitStale')]),
    g.table('Top 10 containers by CLOSE_WAIT', 'The network namespaces with the most CLOSE_WAIT sockets in the fleet, '
                                               + 'with the container (and pod uid) that owns each, from sockdiag_netns_info.', 'short',
            [t(c.whichContainer('topk(10, %s)' % N('instance_netns:sockdiag_tcp_close_wait_sockets:sum')), ref='A', table=true)],
            [runbook('SockdiagCloseWaitGrowing')], { Value: 'CLOSE_WAIT' } + containerCols, w=24, h=8, sortBy='CLOSE_WAIT',
            exclude=['__name__', 'job', cfg.clusterLabel]),

    g.row('Listeners and ports across the fleet'),
    g.timeseries('Top 10 listeners by peak fill', 'Listeners whose accept queue came closest to the backlog '
                                                  + '(peak during each poll / backlog; a full queue reads backlog+1, over 100%).', 'percentunit',
                 [t('topk(10, %s)' % N('instance_netns_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio'),
                    '{{process}} {{address}}:{{port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagListenQueueFull')], thr=th([['green', null], ['orange', 0.5], ['red', cfg.listenQueueFullRatio]])),
    g.timeseries('Top 10 UNIX listeners by peak fill', 'UNIX stream listeners (php-fpm, gunicorn, uwsgi) whose accept '
                                                       + 'queue came closest to the backlog (peak / backlog).', 'percentunit',
                 [t('topk(10, %s)' % N('instance_netns_path_process:sockdiag_unix_listen_queue_peak_per_limit:ratio'),
                    '{{process}} {{path}} {{netns}} {{instance}}')],
                 [runbook('SockdiagUnixListenQueueFull')], thr=th([['green', null], ['orange', 0.5], ['red', cfg.unixListenQueueFullRatio]])),
    g.timeseries('Namespaces with listen drops', 'TcpExt ListenDrops per second (5-minute rate), hosts and network '
                                                 + 'namespaces where it is above zero.', 'cps',
                 [t('topk(10, %s > 0)' % N('instance_netns:sockdiag_tcp_listen_drops:rate5m'), NI)],
                 [runbook('SockdiagListenOverflows')]),
    g.timeseries('Never-accepted CLOSE_WAIT by namespace', 'Connections abandoned by their clients inside an accept '
                                                           + 'queue: the listener is not accepting.', 'short',
                 [t('topk(10, %s > 0)' % N('instance_netns:sockdiag_tcp_unaccepted_close_wait_sockets:sum'), NI)],
                 [runbook('SockdiagListenerNotAccepting')]),
    g.timeseries('Top 10 destinations by ephemeral port use', 'Share of the ephemeral port range in use toward '
                                                              + 'one destination, per host and network namespace.', 'percentunit',
                 [t('topk(10, %s)' % N('instance_netns_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio'),
                    '{{remote_address}}:{{remote_port}} {{netns}} {{instance}}')],
                 [runbook('SockdiagEphemeralPortsNearExhaustion')], thr=th([['green', null], ['orange', 0.5], ['red', cfg.ephemeralPortsRatio]]),
                 maxv=1),
    g.timeseries('Top 10 namespaces by TIME_WAIT / tcp_max_tw_buckets', 'TIME_WAIT sockets as a share of '
                                                                         + 'net.ipv4.tcp_max_tw_buckets (per network namespace).', 'percentunit',
                 [t('topk(10, %s)' % N('instance_netns:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio'), NI)],
                 [runbook('SockdiagTimeWaitNearMaxBuckets')], thr=th([['green', null], ['orange', cfg.timeWaitBucketsRatio]]), maxv=1),
    g.timeseries('Top 10 namespaces by connection churn', 'Outgoing plus incoming connections opened per second '
                                                          + '(Tcp ActiveOpens + PassiveOpens, 5-minute rate).', 'cps',
                 [t('topk(10, %s + %s %s)' % [N('instance_netns:sockdiag_tcp_active_opens:rate5m'), c.on(['job', 'instance', 'netns']),
                                              N('instance_netns:sockdiag_tcp_passive_opens:rate5m')], NI)],
                 [RI]),

    g.row('sockdiag_exporter across the fleet'),
    g.timeseries('Poll errors by host', 'Failed polls per second (5-minute rate), hosts where it is above '
                                        + 'zero.', 'cps',
                 [t('topk(10, %s > 0)' % S('instance:sockdiag_poll_errors:rate5m'), '{{instance}}')],
                 [runbook('SockdiagPollErrors')], w=8),
    g.timeseries('Slowest polls', 'Hosts with the longest sock_diag poll.', 's',
                 [t('topk(10, max %s (%s))' % [by(['instance']), S('sockdiag_poll_duration_seconds')], '{{instance}}')],
                 [runbook('SockdiagPollStale')], w=8),
    g.timeseries('Unattributed share by namespace', 'Share of sockets whose owning process could not be found.',
                 'percentunit',
                 [t('topk(10, %s > 0)' % N('instance_netns:sockdiag_unattributed_sockets_per_scanned:ratio'), NI)],
                 [runbook('SockdiagAttributionDegraded')], w=8, thr=th([['green', null], ['orange', cfg.attributionMinRatio]])),
  ];

  g.dashboard(cfg, c.uid('fleet'), 'TCP and UNIX sockets fleet',
              'Every host scraped for sockdiag_exporter: which hosts, network namespaces, processes, listeners and '
              + 'destinations have CLOSE_WAIT, full accept queues or ephemeral port pressure. Built on the sockdiag '
              + 'recording rules.',
              panels, c.variables(),
              [g.dashLink('Host overview', c.uid('overview'), 'One host in detail'), RI])
