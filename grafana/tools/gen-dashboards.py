#!/usr/bin/env python3
"""Generate the sockdiag Grafana dashboards (the committed JSON is what ships).

    python3 grafana/tools/gen-dashboards.py              # rewrite grafana/dashboards/*.json
    python3 grafana/tools/gen-dashboards.py --out DIR    # write elsewhere (the check diffs)

Edit this file, run it, commit both. tests/checks/25-dashboards.sh fails when the committed
JSON differs from what this script generates, lints both dashboards
(grafana/tools/lint-dashboards.py) and sends every query to a real Prometheus.

Two dashboards:
  sockdiag-overview  one host (or a few): states, CLOSE_WAIT by process/port with growth and
                     age, accept queues, never-accepted sockets, TIME_WAIT and ephemeral ports
                     per destination, peers, queued bytes, kernel counters, the sysctls that
                     explain them, and the exporter's own health.
  sockdiag-fleet     every host of a Prometheus: top hosts/listeners/destinations, built on
                     the recording rules of grafana/rules/sockdiag-recording.yml.
Standard library only.
"""
import argparse
import json
import os
import sys

REPO_URL = "https://github.com/sockdiag/sockdiag_exporter/blob/main/"
RUNBOOKS = REPO_URL + "grafana/runbooks/"
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x; newer Grafana migrates it on load
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "dashboards")


# ---- PromQL helpers ----------------------------------------------------------------------------
def sel(metric, *extra):
    """metric{job=~"$job",instance=~"$instance",extra...}: every selector carries both."""
    matchers = ['job=~"$job"', 'instance=~"$instance"', *extra]
    return f"{metric}{{{','.join(matchers)}}}"


PROC = 'process=~"$process"'
PORT = 'port=~"$port"'
EST = 'state="established"'
LISTEN = 'state="listen"'
RECV = 'queue="receive"'
SEND = 'queue="send"'
SOCKDIAG_ALERT = 'alertname=~"Sockdiag.+"'
FIRING = 'alertstate="firing"'
CRIT = 'severity="critical"'
WARN = 'severity="warning"'


def rate(metric, *extra):
    return f"rate({sel(metric, *extra)}[$__rate_interval])"


# ---- Panel helpers -----------------------------------------------------------------------------
def runbook(name):
    return {
        "asDropdown": False, "icon": "doc", "includeVars": False, "keepTime": False, "tags": [],
        "targetBlank": True, "title": f"Runbook: {name}", "tooltip": f"grafana/runbooks/{name}.md",
        "type": "link", "url": f"{RUNBOOKS}{name}.md",
    }


def doc(title, path):
    return {
        "asDropdown": False, "icon": "doc", "includeVars": False, "keepTime": False, "tags": [],
        "targetBlank": True, "title": title, "tooltip": path, "type": "link", "url": REPO_URL + path,
    }


RUNBOOK_INDEX = doc("Runbooks: socket states explained", "grafana/runbooks/README.md")


def target(expr, legend="", ref="A", instant=False, table=False):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "refId": ref}
    if table:
        t.update({"format": "table", "instant": True, "range": False, "legendFormat": "__auto"})
    elif instant:
        t.update({"instant": True, "range": False, "legendFormat": legend or "__auto"})
    else:
        t.update({"range": True, "legendFormat": legend or "__auto"})
    return t


def thresholds(*steps):
    """thresholds(("green", None), ("red", 0.9))"""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


GREEN = thresholds(("green", None))


def _base(kind, title, description, unit, targets, links, w, h, thr=None, minv=None, maxv=None,
          overrides=None):
    defaults = {"unit": unit, "color": {"mode": "palette-classic"}, "thresholds": thr or GREEN}
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    return {
        "type": kind, "title": title, "description": description, "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "targets": targets, "links": links, "_size": (w, h),
    }


def timeseries(title, description, unit, targets, links, w=12, h=8, stack=False, thr=None,
               minv=0, maxv=None, overrides=None, legend_right=False):
    p = _base("timeseries", title, description, unit, targets, links, w, h, thr, minv, maxv, overrides)
    p["fieldConfig"]["defaults"]["custom"] = {
        "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if stack else 5,
        "showPoints": "never", "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if thr else "off"},
    }
    p["options"] = {
        "legend": {"showLegend": True, "displayMode": "table",
                   "placement": "right" if legend_right else "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def stat(title, description, unit, targets, links, w=4, h=4, thr=None, overrides=None, decimals=None):
    p = _base("stat", title, description, unit, targets, links, w, h, thr, overrides=overrides)
    if decimals is not None:
        p["fieldConfig"]["defaults"]["decimals"] = decimals
    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
        "textMode": "auto", "wideLayout": True, "showPercentChange": False,
    }
    return p


def bargauge(title, description, unit, targets, links, w=12, h=8, thr=None, minv=0, maxv=None):
    p = _base("bargauge", title, description, unit, targets, links, w, h, thr, minv, maxv)
    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
        "valueMode": "color", "namePlacement": "auto", "sizing": "auto", "minVizHeight": 16,
        "minVizWidth": 8, "maxVizHeight": 300,
    }
    return p


def table(title, description, unit, targets, links, rename, w=12, h=8, overrides=None, thr=None,
          sort_by=None):
    p = _base("table", title, description, unit, targets, links, w, h, thr, overrides=overrides)
    p["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": ""}}
    if sort_by:
        p["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
    ]
    return p


def unit_override(ref, unit):
    return {"matcher": {"id": "byFrameRefID", "options": ref}, "properties": [{"id": "unit", "value": unit}]}


def column_unit(column, unit):
    return {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "unit", "value": unit}]}


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items):
    """Assign ids and gridPos: rows take a full line, panels flow left to right."""
    out, x, y, line_h, pid = [], 0, 0, 0, 1
    for it in items:
        it = dict(it)
        if it["type"] == "row":
            if x:
                y += line_h
            x, line_h = 0, 0
            it["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            w, h = it.pop("_size")
            if x + w > 24:
                x, y, line_h = 0, y + line_h, 0
            it["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            line_h = max(line_h, h)
        it["id"] = pid
        pid += 1
        out.append(it)
    return out


# ---- Variables ---------------------------------------------------------------------------------
def ds_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "includeAll": False, "multi": False, "options": [],
            "refresh": 1, "regex": "", "skipUrlSync": False,
            "description": "Prometheus that scrapes sockdiag_exporter."}


def query_var(name, label, query, all_value, description):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"var-{name}", "qryType": 1},
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "hide": 0, "includeAll": True, "multi": True, "allValue": all_value, "options": [],
            "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "description": description}


def std_vars():
    return [
        ds_var(),
        query_var("job", "Job", "label_values(sockdiag_build_info, job)", ".+",
                  "Prometheus job(s) scraping sockdiag_exporter."),
        query_var("instance", "Instance", 'label_values(sockdiag_build_info{job=~"$job"}, instance)', ".+",
                  "Host(s) running sockdiag_exporter."),
    ]


def dashboard(uid, title, description, tags, panels, variables, links):
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard"}]},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": links,
        "liveNow": False,
        "panels": layout(panels),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": tags,
        "templating": {"list": variables},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def dash_link(title, uid, tooltip):
    return {"asDropdown": False, "icon": "dashboard", "includeVars": True, "keepTime": True, "tags": [],
            "targetBlank": False, "title": title, "tooltip": tooltip, "type": "link", "url": f"/d/{uid}"}


# ---- Overview ----------------------------------------------------------------------------------
def overview():
    cw = 'state="close_wait"'
    tw = 'state="time_wait"'
    P = [
        row("Overview"),
        stat("ESTABLISHED", "TCP sockets in ESTABLISHED, IPv4 and IPv6, on the selected hosts.", "short",
             [target(f"sum({sel('sockdiag_tcp_sockets', EST)})", instant=True)],
             [RUNBOOK_INDEX]),
        stat("CLOSE_WAIT", "TCP sockets in CLOSE_WAIT: the peer closed, the local application has not "
             "called close() yet. Healthy sockets stay there for milliseconds; a count that only grows is a "
             "leak (see the CLOSE_WAIT row).", "short",
             [target(f"sum({sel('sockdiag_tcp_sockets', cw)})", instant=True)],
             [runbook("SockdiagCloseWaitGrowing")], thr=thresholds(("green", None), ("orange", 100), ("red", 1000))),
        stat("TIME_WAIT", "TCP sockets in TIME_WAIT (2*MSL = 60 s on Linux after the side that closed first). "
             "Each one pins a local port for its 4-tuple: see the TIME_WAIT row for destinations.", "short",
             [target(f"sum({sel('sockdiag_tcp_sockets', tw)})", instant=True)],
             [runbook("SockdiagTimeWaitNearMaxBuckets")]),
        stat("Listening sockets", "TCP sockets in LISTEN.", "short",
             [target(f"sum({sel('sockdiag_tcp_sockets', LISTEN)})", instant=True)],
             [runbook("SockdiagListenQueueFull")]),
        stat("Oldest CLOSE_WAIT", "Age of the oldest CLOSE_WAIT socket (tracked by socket cookie since the "
             "exporter first saw it). Milliseconds on a healthy host; minutes or hours mean leaked connections.",
             "s", [target(f"max({sel('sockdiag_tcp_close_wait_oldest_seconds')})", instant=True)],
             [runbook("SockdiagCloseWaitStale")], thr=thresholds(("green", None), ("orange", 60), ("red", 600))),
        stat("Last successful poll", "Seconds since the exporter's last successful sock_diag poll on the "
             "stalest selected host. Should stay below twice the poll interval (default 15 s).", "s",
             [target(f"time() - min({sel('sockdiag_last_poll_success_timestamp_seconds')})", instant=True)],
             [runbook("SockdiagPollStale")], thr=thresholds(("green", None), ("orange", 60), ("red", 600))),
        timeseries("TCP sockets by state", "Every TCP socket by state (IPv4 + IPv6), stacked. Watch CLOSE_WAIT "
                   "(application not closing), TIME_WAIT (connection churn), SYN_RECV (incoming handshakes, "
                   "SYN floods) and FIN_WAIT2 (peers that do not close, cut by tcp_fin_timeout).", "short",
                   [target(f"sum by (instance, state) ({sel('sockdiag_tcp_sockets')})", "{{state}} {{instance}}")],
                   [RUNBOOK_INDEX], w=24, h=8, stack=True, legend_right=True),

        row("CLOSE_WAIT: which process, which port"),
        timeseries("CLOSE_WAIT by process and port", "CLOSE_WAIT sockets per owning process and port. inbound: "
                   "the local service port (clients closed first, e.g. Apache behind a proxy); outbound: the remote "
                   "port this process connects to (e.g. :3306 for a MySQL pool). process \"\" = no owner (still in "
                   "an accept queue), \"unknown\" = owner not found, \"other\" = folded by the cardinality cap.",
                   "short",
                   [target(f"sum by (instance, direction, port, process) ({sel('sockdiag_tcp_port_sockets', cw, PROC, PORT)})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitGrowing")]),
        timeseries("CLOSE_WAIT growth per hour", "Trend of CLOSE_WAIT per process and port: least-squares slope "
                   "over the last 30 minutes, in sockets per hour (from the recording rule). A leak stays "
                   "positive; steady churn hovers around 0. SockdiagCloseWaitGrowing pages when the lowest count of "
                   "the last 10 minutes exceeds the median of 30 minutes earlier by max(25, 10%) with at least 50 "
                   "sockets, for 15 minutes.", "suffix:/h",
                   [target(f"deriv({sel('instance_direction_port_process:sockdiag_tcp_close_wait_sockets:sum', PROC, PORT)}[30m]) * 3600",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitGrowing")], minv=None),
        timeseries("Oldest CLOSE_WAIT age", "Age of the oldest CLOSE_WAIT socket per process and port. A healthy "
                   "application closes within milliseconds of the peer's FIN; an age that grows with the clock is a "
                   "connection that will never be closed (a leak or a pool that is never released).", "s",
                   [target(f"max by (instance, direction, port, process) ({sel('sockdiag_tcp_close_wait_oldest_seconds', PROC, PORT)})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitStale")], thr=thresholds(("green", None), ("red", 60))),
        timeseries("Stale CLOSE_WAIT sockets", "CLOSE_WAIT sockets older than the exporter's stale threshold "
                   "(default 60 s) per process and port. Any value that stays is a leak: SockdiagCloseWaitStale "
                   "opens a ticket after 15 minutes.", "short",
                   [target(f"sum by (instance, direction, port, process) ({sel('sockdiag_tcp_close_wait_stale_sockets', PROC, PORT)})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitStale")]),
        bargauge("Top CLOSE_WAIT now", "The 10 process/port pairs with the most CLOSE_WAIT sockets right now "
                 "(the `netstat -antp | grep CLOSE_WAIT | awk | sort | uniq -c` of the incidents).", "short",
                 [target(f"topk(10, sum by (direction, port, process) ({sel('sockdiag_tcp_port_sockets', cw, PROC, PORT)}))",
                         "{{process}} {{direction}} :{{port}}", instant=True)],
                 [runbook("SockdiagCloseWaitGrowing")], w=12, h=8),
        stat("Keepalive and FIN timers", "Sysctls that bound how long a dead or half-closed connection lingers: "
             "net.ipv4.tcp_keepalive_time and tcp_keepalive_intvl (a dead peer is detected after time + intvl * "
             "probes), and tcp_fin_timeout (how long the PEER of a CLOSE_WAIT socket waits in FIN_WAIT2). Only the "
             "application closes CLOSE_WAIT; keepalive (sockets with SO_KEEPALIVE) can at most reset one whose "
             "peer is gone, the descriptor stays until close().", "s",
             [target(f"max({sel('sockdiag_sysctl_tcp_keepalive_time_seconds')})", "keepalive_time", "A", instant=True),
              target(f"max({sel('sockdiag_sysctl_tcp_keepalive_intvl_seconds')})", "keepalive_intvl", "B", instant=True),
              target(f"max({sel('sockdiag_sysctl_tcp_fin_timeout_seconds')})", "fin_timeout", "C", instant=True)],
             [runbook("SockdiagCloseWaitStale")], w=8, h=8),
        stat("Keepalive probes", "net.ipv4.tcp_keepalive_probes: unanswered probes before a dead peer's "
             "connection is reset.", "none",
             [target(f"max({sel('sockdiag_sysctl_tcp_keepalive_probes')})", "keepalive_probes", instant=True)],
             [runbook("SockdiagCloseWaitStale")], w=4, h=8),

        row("Listeners: accept queues"),
        timeseries("Accept queue fill (waiting / backlog)", "Connections waiting in each listener's accept queue "
                   "(LISTEN Recv-Q) divided by its backlog (LISTEN Send-Q), at poll time. These are connection "
                   "counts, not bytes. A full queue shows backlog + 1, so a full queue reads slightly over 100%: "
                   "the kernel then drops handshakes (ListenOverflows).", "percentunit",
                   [target(f"{sel('instance_address_port_process:sockdiag_tcp_listen_queue_length_per_limit:ratio', PORT)}",
                           "{{process}} {{address}}:{{port}} {{instance}}")],
                   [runbook("SockdiagListenQueueFull")], thr=thresholds(("green", None), ("orange", 0.5), ("red", 0.9))),
        timeseries("Accept queue peak fill", "Highest accept-queue length seen during each poll interval "
                   "(sampled every second) divided by the backlog. Catches bursts that the poll-time value misses. "
                   "SockdiagListenQueueFull pages when it stays at 90% or more for 5 minutes.", "percentunit",
                   [target(f"{sel('instance_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio', PORT)}",
                           "{{process}} {{address}}:{{port}} {{instance}}")],
                   [runbook("SockdiagListenQueueFull")], thr=thresholds(("green", None), ("orange", 0.5), ("red", 0.9))),
        table("Listeners now", "Every listening socket: connections waiting (Recv-Q), peak during the last poll "
              "interval, and backlog (Send-Q, the limit passed to listen() capped by net.core.somaxconn).", "short",
              [target(f"max by (instance, address, port, process) ({sel('sockdiag_tcp_listen_queue_length', PORT)})", ref="A", table=True),
               target(f"max by (instance, address, port, process) ({sel('sockdiag_tcp_listen_queue_peak', PORT)})", ref="B", table=True),
               target(f"max by (instance, address, port, process) ({sel('sockdiag_tcp_listen_queue_limit', PORT)})", ref="C", table=True)],
              [runbook("SockdiagListenQueueFull")],
              {"Value #A": "waiting", "Value #B": "peak", "Value #C": "backlog"}, w=12, h=8, sort_by="peak"),
        timeseries("Never accepted sockets", "Connections still in an accept queue (inode 0, no process owns them "
                   "yet) per listening port. established: waiting for accept(). close_wait: the client gave up "
                   "before the server accepted it; lsof cannot see these. close_wait that stays means the "
                   "listener stopped accepting (SockdiagListenerNotAccepting).", "short",
                   [target(f"sum by (instance, port, state) ({sel('sockdiag_tcp_unaccepted_sockets', PORT)})",
                           "{{state}} :{{port}} {{instance}}")],
                   [runbook("SockdiagListenerNotAccepting")]),
        timeseries("Listen overflows and drops", "Kernel counters TcpExt ListenOverflows (accept queue full) and "
                   "ListenDrops (every dropped incoming handshake, overflows included), per second. Per host, not "
                   "per port: use the fill panels to find the listener. ListenOverflows also counts retransmitted "
                   "SYNs: read it as happening / not happening.", "cps",
                   [target(f"sum by (instance) ({rate('sockdiag_tcp_listen_overflows_total')})", "overflows {{instance}}", "A"),
                    target(f"sum by (instance) ({rate('sockdiag_tcp_listen_drops_total')})", "drops {{instance}}", "B")],
                   [runbook("SockdiagListenOverflows")], w=8),
        stat("Backlog limits", "net.core.somaxconn caps every listen() backlog; net.ipv4.tcp_max_syn_backlog "
             "bounds half-open (SYN_RECV) connections per listener.", "none",
             [target(f"max({sel('sockdiag_sysctl_somaxconn')})", "somaxconn", "A", instant=True),
              target(f"max({sel('sockdiag_sysctl_tcp_max_syn_backlog')})", "tcp_max_syn_backlog", "B", instant=True)],
             [runbook("SockdiagListenQueueFull")], w=4),

        row("TIME_WAIT and ephemeral ports"),
        timeseries("TIME_WAIT against tcp_max_tw_buckets", "TIME_WAIT sockets (IPv4 + IPv6) and "
                   "net.ipv4.tcp_max_tw_buckets. At the limit the kernel skips TIME_WAIT for closing connections "
                   "and logs \"time wait bucket table overflow\".", "short",
                   [target(f"sum by (instance) ({sel('sockdiag_tcp_sockets', tw)})", "TIME_WAIT {{instance}}", "A"),
                    target(f"max by (instance) ({sel('sockdiag_sysctl_tcp_max_tw_buckets')})", "tcp_max_tw_buckets {{instance}}", "B")],
                   [runbook("SockdiagTimeWaitNearMaxBuckets")]),
        timeseries("TIME_WAIT by port", "TIME_WAIT sockets per port. inbound: local service port (this host "
                   "closed first, e.g. an API answering a client in a loop); outbound: remote port (this host's "
                   "client closed first).", "short",
                   [target(f"sum by (instance, direction, port) ({sel('sockdiag_tcp_port_sockets', tw, PORT)})",
                           "{{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagTimeWaitNearMaxBuckets")]),
        timeseries("Ephemeral ports used per destination (share of range)", "Local ports of "
                   "net.ipv4.ip_local_port_range in use toward each of the top destinations (any state, TIME_WAIT "
                   "included), divided by the size of the range. At 100% connect() to that destination fails "
                   "with EADDRNOTAVAIL; SockdiagEphemeralPortsNearExhaustion pages above 75% for 5 minutes.",
                   "percentunit",
                   [target(sel('instance_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio'),
                           "{{remote_address}}:{{remote_port}} {{instance}}")],
                   [runbook("SockdiagEphemeralPortsNearExhaustion")], thr=thresholds(("green", None), ("orange", 0.5), ("red", 0.75)),
                   maxv=1),
        timeseries("Ephemeral ports used per destination", "Local ports in use toward each top destination, with "
                   "the size of the ephemeral port range as the ceiling.", "short",
                   [target(f"max by (instance, remote_address, remote_port) ({sel('sockdiag_tcp_ephemeral_ports_used')})",
                           "{{remote_address}}:{{remote_port}} {{instance}}", "A"),
                    target(f"max by (instance) ({sel('sockdiag_tcp_ephemeral_port_range_size')})", "port range size {{instance}}", "B")],
                   [runbook("SockdiagEphemeralPortsNearExhaustion")]),
        stat("TIME_WAIT sysctls", "net.ipv4.tcp_tw_reuse (0 off, 1 on, 2 loopback only: lets connect() reuse a "
             "TIME_WAIT port for a new outgoing connection), tcp_max_tw_buckets, the ephemeral port range size "
             "and tcp_fin_timeout.", "none",
             [target(f"max({sel('sockdiag_sysctl_tcp_tw_reuse')})", "tcp_tw_reuse", "A", instant=True),
              target(f"max({sel('sockdiag_sysctl_tcp_max_tw_buckets')})", "tcp_max_tw_buckets", "B", instant=True),
              target(f"max({sel('sockdiag_tcp_ephemeral_port_range_size')})", "ephemeral ports", "C", instant=True),
              target(f"max({sel('sockdiag_sysctl_tcp_fin_timeout_seconds')})", "tcp_fin_timeout", "D", instant=True)],
             [runbook("SockdiagTimeWaitNearMaxBuckets")], w=12, h=6,
             overrides=[unit_override("B", "short"), unit_override("C", "short"), unit_override("D", "s")]),
        timeseries("TIME_WAIT bucket overflows", "TcpExt TCPTimeWaitOverflow per second: connections that closed "
                   "without TIME_WAIT because tcp_max_tw_buckets was reached.", "cps",
                   [target(f"sum by (instance) ({rate('sockdiag_tcp_time_wait_overflow_total')})", "overflows {{instance}}")],
                   [runbook("SockdiagTimeWaitBucketsOverflowing")], w=12, h=6),

        row("Peers and connection churn"),
        timeseries("Top peers", "Sockets per remote address for the top peers (the exporter keeps the top K "
                   "and folds the rest into \"other\"). A single peer with a large, churning count is often a "
                   "client in a loop (e.g. a container behind the Docker bridge gateway).", "short",
                   [target(f"topk(10, sum by (instance, remote_address) ({sel('sockdiag_tcp_peer_sockets')}))",
                           "{{remote_address}} {{instance}}")],
                   [runbook("SockdiagTimeWaitNearMaxBuckets")]),
        bargauge("Peers by state now", "The 10 largest (peer, state) pairs right now.", "short",
                 [target(f"topk(10, sum by (remote_address, state) ({sel('sockdiag_tcp_peer_sockets')}))",
                         "{{remote_address}} {{state}}", instant=True)],
                 [runbook("SockdiagTimeWaitNearMaxBuckets")]),
        timeseries("Connections opened per second", "Tcp ActiveOpens (connect() from this host) and PassiveOpens "
                   "(accepted handshakes) per second: connection churn. TIME_WAIT is roughly opens per second "
                   "times 60 s on the side that closes first.", "cps",
                   [target(f"sum by (instance) ({rate('sockdiag_tcp_active_opens_total')})", "active (outgoing) {{instance}}", "A"),
                    target(f"sum by (instance) ({rate('sockdiag_tcp_passive_opens_total')})", "passive (incoming) {{instance}}", "B")],
                   [RUNBOOK_INDEX]),
        timeseries("Connections aborted per second", "TcpExt TCPAbortOnTimeout (retransmissions or keepalive "
                   "probes exhausted: dead peers) and TCPAbortOnClose (closed with unread data: a reset sent to "
                   "the peer).", "cps",
                   [target(f"sum by (instance) ({rate('sockdiag_tcp_abort_on_timeout_total')})", "on timeout {{instance}}", "A"),
                    target(f"sum by (instance) ({rate('sockdiag_tcp_abort_on_close_total')})", "on close {{instance}}", "B")],
                   [RUNBOOK_INDEX]),

        row("Queued bytes"),
        timeseries("Unread bytes (receive queues)", "Bytes received but not read by the application, per "
                   "process and port (non-LISTEN sockets). A CLOSE_WAIT socket whose EOF was never read counts 1 "
                   "for the FIN; sockets in an accept queue hold the unread request (process \"\").", "bytes",
                   [target(f"sum by (instance, direction, port, process) ({sel('sockdiag_tcp_queued_bytes', RECV, PROC, PORT)})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagListenerNotAccepting")]),
        timeseries("Unsent bytes (send queues)", "Bytes written by the application and not yet acknowledged by "
                   "the peer, per process and port: a slow or stalled peer.", "bytes",
                   [target(f"sum by (instance, direction, port, process) ({sel('sockdiag_tcp_queued_bytes', SEND, PROC, PORT)})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [RUNBOOK_INDEX]),

        row("sockdiag_exporter health"),
        timeseries("Poll duration", "Duration of the last sock_diag poll (netlink dump, process scan, "
                   "aggregation). Scrapes do not wait for it.", "s",
                   [target(f"max by (instance) ({sel('sockdiag_poll_duration_seconds')})", "{{instance}}")],
                   [runbook("SockdiagPollStale")], w=8),
        timeseries("Poll errors by stage", "Failed polls per second by stage. A failed poll keeps the previous "
                   "snapshot, so figures freeze instead of dropping to zero.", "cps",
                   [target(f"sum by (instance, stage) ({rate('sockdiag_poll_errors_total')})", "{{stage}} {{instance}}")],
                   [runbook("SockdiagPollErrors")], w=8),
        timeseries("Time since last successful poll", "Seconds since the last successful poll. Should stay "
                   "below twice the poll interval.", "s",
                   [target(f"time() - max by (instance) ({sel('sockdiag_last_poll_success_timestamp_seconds')})", "{{instance}}")],
                   [runbook("SockdiagPollStale")], w=8, thr=thresholds(("green", None), ("red", 600))),
        timeseries("Scrape status", "up: 1 when Prometheus scraped the exporter, 0 when the scrape failed.", "none",
                   [target(sel('up'), "{{instance}}")],
                   [runbook("SockdiagExporterDown")], w=8, maxv=1),
        timeseries("Sockets scanned per poll", "Sockets in the last sock_diag dump (all states).", "short",
                   [target(f"max by (instance) ({sel('sockdiag_sockets_scanned')})", "{{instance}}")],
                   [RUNBOOK_INDEX], w=8),
        timeseries("Attribution and folding", "unattributed: sockets with an owner inode whose process was not "
                   "found (process=\"unknown\"; missing capabilities or hidepid). folded: label values folded "
                   "into \"other\" by the cardinality caps, per label.", "short",
                   [target(f"max by (instance) ({sel('sockdiag_unattributed_sockets')})", "unattributed {{instance}}", "A"),
                    target(f"max by (instance, label) ({sel('sockdiag_folded_label_values')})", "folded {{label}} {{instance}}", "B")],
                   [runbook("SockdiagAttributionDegraded")], w=8),
        table("Exporter build", "Version and revision of sockdiag_exporter per host.", "none",
              [target(f"max by (instance, version, revision) ({sel('sockdiag_build_info')})", ref="A", table=True)],
              [RUNBOOK_INDEX], {"Value": "info"}, w=12, h=6),
        table("Firing sockdiag alerts", "sockdiag alerts firing now for the selected hosts (Prometheus ALERTS "
              "series).", "none",
              [target(f"max by (alertname, severity, instance, direction, port, process, remote_address, remote_port) "
                      f"({sel('ALERTS', SOCKDIAG_ALERT, FIRING)})", ref="A", table=True)],
              [RUNBOOK_INDEX], {"Value": "firing"}, w=12, h=6),
    ]
    variables = std_vars() + [
        query_var("process", "Process",
                  'label_values(sockdiag_tcp_port_sockets{job=~"$job",instance=~"$instance"}, process)', ".*",
                  "Owning process (comm). All includes sockets without an owner (process=\"\")."),
        query_var("port", "Port",
                  'label_values(sockdiag_tcp_port_sockets{job=~"$job",instance=~"$instance"}, port)', ".*",
                  "Local service port (inbound) or remote port (outbound)."),
    ]
    return dashboard(
        "sockdiag-overview", "sockdiag / TCP sockets overview",
        "TCP socket states of one host (or a few) from sockdiag_exporter: CLOSE_WAIT by process and port, "
        "accept queues, TIME_WAIT and ephemeral ports per destination, kernel counters and the sysctls that "
        "explain them.",
        ["sockdiag", "tcp", "linux"], P, variables,
        [dash_link("Fleet", "sockdiag-fleet", "Every host"), RUNBOOK_INDEX])


# ---- Fleet -------------------------------------------------------------------------------------
def fleet():
    R = "instance_direction_port_process:sockdiag_tcp_close_wait_sockets:sum"
    P = [
        row("Fleet"),
        stat("Hosts reporting", "Hosts whose sockdiag_exporter is scraped.", "short",
             [target(f"count({sel('sockdiag_build_info')})", instant=True)], [RUNBOOK_INDEX]),
        stat("Hosts down", "Hosts whose sockdiag_exporter scrape fails (up == 0).", "short",
             [target(f"count({sel('up')} == 0) or vector(0)", instant=True)],
             [runbook("SockdiagExporterDown")], thr=thresholds(("green", None), ("red", 1))),
        stat("Hosts with stale polls", "Hosts whose exporter has not completed a poll in 10 minutes.", "short",
             [target(f"count(changes({sel('sockdiag_last_poll_success_timestamp_seconds')}[10m]) == 0) or vector(0)", instant=True)],
             [runbook("SockdiagPollStale")], thr=thresholds(("green", None), ("orange", 1))),
        stat("Critical sockdiag alerts", "sockdiag alerts with severity critical firing now (pages).", "short",
             [target(f"count({sel('ALERTS', SOCKDIAG_ALERT, FIRING, CRIT)}) or vector(0)", instant=True)],
             [RUNBOOK_INDEX], thr=thresholds(("green", None), ("red", 1))),
        stat("Warning sockdiag alerts", "sockdiag alerts with severity warning firing now (tickets).", "short",
             [target(f"count({sel('ALERTS', SOCKDIAG_ALERT, FIRING, WARN)}) or vector(0)", instant=True)],
             [RUNBOOK_INDEX], thr=thresholds(("green", None), ("orange", 1))),
        stat("CLOSE_WAIT in the fleet", "CLOSE_WAIT sockets on all selected hosts.", "short",
             [target(f"sum({sel('instance:sockdiag_tcp_close_wait_sockets:sum')})", instant=True)],
             [runbook("SockdiagCloseWaitGrowing")]),
        timeseries("Sockets by state across the fleet", "Sum over the selected hosts of every TCP state "
                   "(recording rule instance_state:sockdiag_tcp_sockets:sum).", "short",
                   [target(f"sum by (state) ({sel('instance_state:sockdiag_tcp_sockets:sum')})", "{{state}}")],
                   [RUNBOOK_INDEX], w=24, stack=True, legend_right=True),

        row("Hosts"),
        table("Hosts now", "One line per host: sockets, CLOSE_WAIT (and never-accepted CLOSE_WAIT), stale "
              "CLOSE_WAIT, TIME_WAIT against tcp_max_tw_buckets, fullest accept queue (peak / backlog), highest "
              "ephemeral port use toward one destination, listen drops per second. Sort by any column.", "short",
              [target(sel('instance:sockdiag_tcp_sockets:sum'), ref="A", table=True),
               target(sel('instance:sockdiag_tcp_close_wait_sockets:sum'), ref="B", table=True),
               target(sel('instance:sockdiag_tcp_close_wait_stale_sockets:sum'), ref="C", table=True),
               target(sel('instance:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio'), ref="D", table=True),
               target(sel('instance:sockdiag_tcp_listen_queue_peak_per_limit:max'), ref="E", table=True),
               target(sel('instance:sockdiag_tcp_ephemeral_ports_used_per_range:max'), ref="F", table=True),
               target(sel('instance:sockdiag_tcp_listen_drops:rate5m'), ref="G", table=True),
               target(sel('instance:sockdiag_tcp_unaccepted_close_wait_sockets:sum'), ref="H", table=True)],
              [RUNBOOK_INDEX],
              {"Value #A": "sockets", "Value #B": "CLOSE_WAIT", "Value #C": "stale CLOSE_WAIT",
               "Value #D": "TIME_WAIT / max", "Value #E": "fullest queue", "Value #F": "ephemeral max",
               "Value #G": "listen drops/s", "Value #H": "never-accepted CLOSE_WAIT"},
              w=24, h=10, sort_by="CLOSE_WAIT",
              overrides=[column_unit("TIME_WAIT / max", "percentunit"), column_unit("fullest queue", "percentunit"),
                         column_unit("ephemeral max", "percentunit"), column_unit("listen drops/s", "cps")]),

        row("CLOSE_WAIT across the fleet"),
        timeseries("Top 10 hosts by CLOSE_WAIT", "Hosts with the most CLOSE_WAIT sockets.", "short",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_close_wait_sockets:sum')})", "{{instance}}")],
                   [runbook("SockdiagCloseWaitGrowing")]),
        timeseries("Top 10 hosts by CLOSE_WAIT growth", "Fastest growing CLOSE_WAIT per host: least-squares "
                   "slope over 30 minutes, sockets per hour (recording rule "
                   "instance:sockdiag_tcp_close_wait_sockets:deriv30m).", "suffix:/h",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_close_wait_sockets:deriv30m')} * 3600)", "{{instance}}")],
                   [runbook("SockdiagCloseWaitGrowing")], minv=None),
        timeseries("Top 10 process/port by CLOSE_WAIT", "The process and port pairs with the most CLOSE_WAIT "
                   "sockets in the fleet (inbound: local service port, outbound: remote port).", "short",
                   [target(f"topk(10, {sel(R)})", "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitGrowing")]),
        timeseries("Top 10 process/port by stale CLOSE_WAIT", "Leaked CLOSE_WAIT sockets (older than the "
                   "exporter's stale threshold) per process and port.", "short",
                   [target(f"topk(10, {sel('instance_direction_port_process:sockdiag_tcp_close_wait_stale_sockets:sum')})",
                           "{{process}} {{direction}} :{{port}} {{instance}}")],
                   [runbook("SockdiagCloseWaitStale")]),

        row("Listeners and ports across the fleet"),
        timeseries("Top 10 listeners by peak fill", "Listeners whose accept queue came closest to the backlog "
                   "(peak during each poll / backlog; a full queue reads backlog+1, over 100%).", "percentunit",
                   [target(f"topk(10, {sel('instance_address_port_process:sockdiag_tcp_listen_queue_peak_per_limit:ratio')})",
                           "{{process}} {{address}}:{{port}} {{instance}}")],
                   [runbook("SockdiagListenQueueFull")], thr=thresholds(("green", None), ("orange", 0.5), ("red", 0.9))),
        timeseries("Hosts with listen drops", "TcpExt ListenDrops per second (5-minute rate), hosts where it is "
                   "above zero.", "cps",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_listen_drops:rate5m')} > 0)", "{{instance}}")],
                   [runbook("SockdiagListenOverflows")]),
        timeseries("Never-accepted CLOSE_WAIT by host", "Connections abandoned by their clients inside an accept "
                   "queue: the listener is not accepting.", "short",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_unaccepted_close_wait_sockets:sum')} > 0)", "{{instance}}")],
                   [runbook("SockdiagListenerNotAccepting")]),
        timeseries("Top 10 destinations by ephemeral port use", "Share of the ephemeral port range in use toward "
                   "one destination, per host.", "percentunit",
                   [target(f"topk(10, {sel('instance_remote_address_remote_port:sockdiag_tcp_ephemeral_ports_used_per_range:ratio')})",
                           "{{remote_address}}:{{remote_port}} {{instance}}")],
                   [runbook("SockdiagEphemeralPortsNearExhaustion")], thr=thresholds(("green", None), ("orange", 0.5), ("red", 0.75)),
                   maxv=1),
        timeseries("Top 10 hosts by TIME_WAIT / tcp_max_tw_buckets", "TIME_WAIT sockets as a share of "
                   "net.ipv4.tcp_max_tw_buckets.", "percentunit",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_time_wait_sockets_per_max_tw_buckets:ratio')})", "{{instance}}")],
                   [runbook("SockdiagTimeWaitNearMaxBuckets")], thr=thresholds(("green", None), ("orange", 0.8)), maxv=1),
        timeseries("Top 10 hosts by connection churn", "Outgoing plus incoming connections opened per second "
                   "(Tcp ActiveOpens + PassiveOpens, 5-minute rate).", "cps",
                   [target(f"topk(10, {sel('instance:sockdiag_tcp_active_opens:rate5m')} + on (job, instance) "
                           f"{sel('instance:sockdiag_tcp_passive_opens:rate5m')})", "{{instance}}")],
                   [RUNBOOK_INDEX]),

        row("sockdiag_exporter across the fleet"),
        timeseries("Poll errors by host", "Failed polls per second (5-minute rate), hosts where it is above "
                   "zero.", "cps",
                   [target(f"topk(10, {sel('instance:sockdiag_poll_errors:rate5m')} > 0)", "{{instance}}")],
                   [runbook("SockdiagPollErrors")], w=8),
        timeseries("Slowest polls", "Hosts with the longest sock_diag poll.", "s",
                   [target(f"topk(10, max by (instance) ({sel('sockdiag_poll_duration_seconds')}))", "{{instance}}")],
                   [runbook("SockdiagPollStale")], w=8),
        timeseries("Unattributed share by host", "Share of sockets whose owning process could not be found.",
                   "percentunit",
                   [target(f"topk(10, {sel('instance:sockdiag_unattributed_sockets_per_scanned:ratio')} > 0)", "{{instance}}")],
                   [runbook("SockdiagAttributionDegraded")], w=8, thr=thresholds(("green", None), ("orange", 0.01))),
    ]
    return dashboard(
        "sockdiag-fleet", "sockdiag / TCP sockets fleet",
        "Every host scraped for sockdiag_exporter: which hosts, processes, listeners and destinations have "
        "CLOSE_WAIT, full accept queues or ephemeral port pressure. Built on the sockdiag recording rules.",
        ["sockdiag", "tcp", "linux"], P, std_vars(),
        [dash_link("Host overview", "sockdiag-overview", "One host in detail"), RUNBOOK_INDEX])


def main():
    ap = argparse.ArgumentParser(description="Generate grafana/dashboards/*.json")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, build in (("sockdiag-overview.json", overview), ("sockdiag-fleet.json", fleet)):
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(build(), f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
