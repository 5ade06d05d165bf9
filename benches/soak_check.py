#!/usr/bin/env python3
"""The checks of the churn soak (benches/soak.py): the exposition and `ss` parsed into
counts per family and state and per process, and the owner names that contradict what
the load made (wrong names)."""

import collections
import re
import subprocess

from soak_load import CHURN_PORT, HOLD_PORT, LOAD_PORTS, TW_PORT

WEB_PORT = 9900


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    out = collections.defaultdict(list)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if m:
            out[m.group(1)].append((dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


SS_STATE = {"ESTAB": "established", "SYN-SENT": "syn_sent", "SYN-RECV": "syn_recv",
            "FIN-WAIT-1": "fin_wait1", "FIN-WAIT-2": "fin_wait2", "TIME-WAIT": "time_wait",
            "UNCONN": "close", "CLOSE-WAIT": "close_wait", "LAST-ACK": "last_ack",
            "LISTEN": "listen", "CLOSING": "closing"}
USERS = re.compile(r'users:\(\("((?:[^"\\]|\\.)*)",pid=(\d+)')


def ss_read():
    """Counts per (family, state) and per (process, listen?) from one `ss -Htanp`."""
    out = subprocess.run(["ss", "-Htanp"], check=True, capture_output=True, text=True).stdout
    states = collections.Counter()
    owners = collections.Counter()
    for line in out.splitlines():
        f = line.split()
        state = SS_STATE[f[0]]
        family = "ipv6" if f[3].startswith("[") else "ipv4"
        states[(family, state)] += 1
        m = USERS.search(line)
        owners[(m.group(1) if m else "", state == "listen")] += 1
    return states, owners


def exporter_counts(metrics):
    states = collections.Counter()
    for labels, v in metrics["sockdiag_tcp_sockets"]:
        if v:
            states[(labels["family"], labels["state"])] += int(v)
    owners = collections.Counter()
    for labels, v in metrics["sockdiag_tcp_port_sockets"]:
        if v:
            owners[(labels["process"], False)] += int(v)
    for labels, _ in metrics["sockdiag_tcp_listen_queue_length"]:
        owners[(labels["process"], True)] += 1
    return states, owners


def expected_owner(direction, port, exporter_comm):
    """Who may hold a socket of this series: the one true name, by construction."""
    if port == str(WEB_PORT):
        return "soak_run" if direction == "outbound" else exporter_comm
    for name, p in CHURN_PORT.items():
        if port == str(p):
            return name if direction == "outbound" else "soak_load"
    if port in map(str, LOAD_PORTS):
        return "soak_load"
    if port == str(HOLD_PORT):
        return "soak_hold"
    if port == str(TW_PORT):
        return "soak_tw"  # its sockets are TIME_WAIT, without an owner: never checked
    return None


def wrong_names(metrics, exporter_comm="sockdiag_export"):
    """Series whose process contradicts the truth; `unknown`, `pending` (an owner not found
    yet, named by a later poll) and "" are never wrong."""
    wrong = []
    for labels, v in metrics["sockdiag_tcp_port_sockets"]:
        proc = labels["process"]
        if not v or proc in ("", "unknown", "pending"):
            continue
        if proc != expected_owner(labels["direction"], labels["port"], exporter_comm):
            wrong.append(labels | {"value": v})
    for labels, _ in metrics["sockdiag_tcp_listen_queue_length"]:
        if labels["process"] not in ("unknown", expected_owner("inbound", labels["port"], exporter_comm)):
            wrong.append(labels)
    return wrong


def selftest():
    """The checks of this file can fail: a wrong name, a miscount and ss parsing."""
    text = '''# TYPE sockdiag_tcp_port_sockets gauge
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7001",process="churn_a",state="established"} 3
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7002",process="churn_a",state="close_wait"} 1
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7002",process="unknown",state="established"} 2
sockdiag_tcp_port_sockets{netns="host",direction="inbound",port="7002",process="churn_b",state="established"} 0
sockdiag_tcp_port_sockets{netns="host",direction="inbound",port="8100",process="pending",state="established"} 1
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="8100",process="soak_load",state="established"} 1
sockdiag_tcp_port_sockets{netns="host",direction="inbound",port="8001",process="",state="time_wait"} 9
sockdiag_tcp_listen_queue_length{netns="host",address="127.0.0.1",port="9900",process="soak_load"} 0
sockdiag_tcp_sockets{netns="host",family="ipv4",state="established"} 5
sockdiag_tcp_sockets{netns="host",family="ipv4",state="close_wait"} 1
'''
    m = parse(text)
    wrong = wrong_names(m)
    assert [(w["port"], w["process"]) for w in wrong] == [
        ("7002", "churn_a"), ("8100", "soak_load"), ("9900", "soak_load")], wrong
    states, owners = exporter_counts(m)
    assert states == {("ipv4", "established"): 5, ("ipv4", "close_wait"): 1}, states
    assert owners == {("churn_a", False): 4, ("unknown", False): 2, ("", False): 9,
                      ("pending", False): 1, ("soak_load", False): 1,
                      ("soak_load", True): 1}, owners
    line = 'ESTAB 0 0 [::1]:8004 [::1]:40000 users:(("soak_load",pid=7,fd=3),("x",pid=9,fd=4))'
    assert USERS.search(line).group(1) == "soak_load"
    print("soak.py selftest: ok")
