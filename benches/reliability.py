#!/usr/bin/env python3
"""Hostile-client cases of docs/reliability.md, measured against the release binary.

Run by benches/reliability.sh inside a private network namespace (loopback only). Prints a
Markdown table: each case, its load, and what the exporter did.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

BIN = sys.argv[1]
ADDR = ("127.0.0.1", 10120)


def start(*args, nofile=None):
    cmd = [BIN, "--web.listen-address=127.0.0.1:10120", "--poll.interval=1s", "--log.level=warn", *args]
    if nofile:
        cmd = ["prlimit", f"--nofile={nofile}:{nofile}", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={})
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(ADDR, timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(1.5)
    return proc


def rss_kib(proc):
    with open(f"/proc/{proc.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def scrape():
    """(status, seconds, body) of one GET /metrics."""
    began = time.time()
    try:
        s = socket.create_connection(ADDR, timeout=10)
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        status = int(data.split(b" ", 2)[1])
        return status, time.time() - began, data.decode(errors="replace")
    except OSError:
        return 0, time.time() - began, ""


def value(body, series):
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def poll_errors(body):
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith("sockdiag_poll_errors_total{"))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


rows = []

# 1. Slowloris: 200 clients send a header byte per second for 20 s.
proc = start()
before = rss_kib(proc)
clients = []
for _ in range(200):
    s = socket.create_connection(ADDR)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    clients.append(s)
peak = before
scrape_times = []
closed_early = 0
for _ in range(20):
    for s in clients:
        try:
            s.sendall(b"X")
        except OSError:
            closed_early += 1
    peak = max(peak, rss_kib(proc))
    status, took, _ = scrape()
    scrape_times.append(took if status == 200 else float("inf"))
    time.sleep(1)
for s in clients:
    s.close()
time.sleep(1)
after = rss_kib(proc)
_, _, body = scrape()
header_closed = value(body, 'sockdiag_http_connections_closed_total{reason="header_timeout"}')
rows.append((
    "Slowloris: partial headers, one byte per second",
    "200 clients, 20 s",
    f"RSS {before/1024:.1f} MiB before, peak {peak/1024:.1f} MiB, {after/1024:.1f} MiB after; "
    f"closed at the 10 s header timeout "
    f"({header_closed:.0f} counted); "
    f"/metrics answered every second, slowest {max(scrape_times)*1000:.1f} ms",
))
stop(proc)

# 2. 1,100 idle connections under RLIMIT_NOFILE 1024 (systemd's default soft limit).
proc = start(nofile=1024)
idle = []
refused = 0
for _ in range(1100):
    try:
        idle.append(socket.create_connection(ADDR, timeout=2))
    except OSError:
        refused += 1
time.sleep(2.5)
statuses = [scrape() for _ in range(5)]
body = statuses[-1][2]
evicted = value(body, 'sockdiag_http_connections_closed_total{reason="evicted"}')
rows.append((
    "Idle connections beyond the file limit",
    "1,100 connections from one peer, RLIMIT_NOFILE 1024",
    f"cap {value(body, 'sockdiag_http_connections_max'):.0f}, "
    f"{value(body, 'sockdiag_http_connections_open'):.0f} open, "
    f"{evicted:.0f} evicted; "
    f"/metrics {sorted(set(s for s, _, _ in statuses))} in at most {max(t for _, t, _ in statuses)*1000:.1f} ms; "
    f"poll errors {poll_errors(body):.0f}; accept errors {value(body, 'sockdiag_http_accept_errors_total'):.0f}",
))
for s in idle:
    s.close()
stop(proc)

# 3. Idle keep-alive and a silent connection.
proc = start()
silent = socket.create_connection(ADDR)
began = time.time()
silent.settimeout(120)
try:
    silent.recv(1)
except OSError:
    pass
silent_closed = time.time() - began
keep = socket.create_connection(ADDR)
keep.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
keep.recv(4096)
began = time.time()
keep.settimeout(120)
try:
    while keep.recv(4096):
        pass
except OSError:
    pass
idle_closed = time.time() - began
rows.append((
    "Silent connection; idle keep-alive",
    "1 each",
    f"silent closed after {silent_closed:.1f} s (header timeout 10 s); keep-alive closed "
    f"after {idle_closed:.1f} s idle (idle timeout 60 s)",
))

# 4. SIGTERM with a half-sent request and 100 idle connections.
partial = socket.create_connection(ADDR)
partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
idle = [socket.create_connection(ADDR) for _ in range(100)]
time.sleep(0.2)
began = time.time()
proc.send_signal(signal.SIGTERM)
code = proc.wait(timeout=10)
rows.append((
    "SIGTERM with stalled clients",
    "1 half-sent request, 100 idle connections",
    f"exit {code} after {(time.time()-began)*1000:.0f} ms (drain deadline 5 s)",
))

# 5. SIGHUP without a web config; 6. oversized header.
proc = start()
proc.send_signal(signal.SIGHUP)
time.sleep(0.5)
alive = proc.poll() is None
s = socket.create_connection(ADDR)
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
head = s.recv(64).split(b"\r\n")[0].decode()
rows.append(("SIGHUP", "1 signal, no web config", "still serving" if alive else f"exited {proc.returncode}"))
rows.append(("Oversized request header", "20 KB header", head))
stop(proc)

print("| Case | Load | Result |")
print("|---|---|---|")
for case, load, result in rows:
    print(f"| {case} | {load} | {result} |")
