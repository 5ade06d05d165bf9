// PromQL text helpers shared by the rules, the alerts and the dashboards.
{
  // A number as PromQL and prose want it: 0.9, not 0.90000000000000002.
  num(x):: '%g' % x,

  // A percentage for prose: 0.9 -> "90%".
  pct(x):: '%g%%' % (x * 100),

  // "5m" -> "5 minutes", "1h" -> "1 hour", "30s" -> "30 seconds" (alert and panel prose).
  human(d)::
    local n = std.parseInt(d[:std.length(d) - 1]);
    local unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[d[std.length(d) - 1]];
    '%d %s%s' % [n, unit, if n == 1 then '' else 's'],

  // "5m" -> 300 (durations as Prometheus writes them in rules: one number, one unit).
  seconds(d):: std.parseInt(d[:std.length(d) - 1]) * { s: 1, m: 60, h: 3600, d: 86400 }[d[std.length(d) - 1]],
  // The sum of two durations in prose: humanSum('10m', '5m') -> "15 minutes".
  humanSum(a, b)::
    local t = self.seconds(a) + self.seconds(b);
    self.human(if t % 86400 == 0 then '%dd' % (t / 86400) else if t % 3600 == 0 then '%dh' % (t / 3600)
    else if t % 60 == 0 then '%dm' % (t / 60) else '%ds' % t),

  // "by (a, b)" / "on (a, b)".
  by(labels):: 'by (%s)' % std.join(', ', labels),
  on(labels):: 'on (%s)' % std.join(', ', labels),

  // metric{m1,m2,...}; empty matchers are skipped.
  sel(metric, matchers):: '%s{%s}' % [metric, std.join(',', [m for m in matchers if m != ''])],

  // The label sets every aggregation keeps. host: one exporter; ns: one network namespace of
  // it (the `netns` label of every per-socket family, kernel counter and sysctl).
  hostLabels(cfg):: [cfg.clusterLabel, 'job', 'instance'],
  nsLabels(cfg):: self.hostLabels(cfg) + ['netns'],
}
