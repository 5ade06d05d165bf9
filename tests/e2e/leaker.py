#!/usr/bin/env python3
"""The leaking application of the end-to-end test (tests/checks/30-e2e.sh).

    python3 tests/e2e/leaker.py --name leaky-app --connect 127.0.0.1:3306 --rate 5

docs/incidents.md #3: a client of a database whose server closes connections, and a code path
that never closes its end. Every 1/RATE seconds it opens one connection to the server
(tests/e2e/dbserver.py), sends "L" (the server answers a few bytes and closes) and keeps the
socket without ever reading or closing it: the socket sits in CLOSE_WAIT, outbound, remote
port = the server's port, owned by this process (comm set to --name with prctl). Each tick
also opens one well-behaved connection ("H") that it closes first itself (TIME_WAIT on this
side), so the healthy churn is visible next to the leak.

SIGUSR1: close every leaked socket, stop leaking and stay alive (so the alert resolves
because the sockets are gone, not because the process died). SIGTERM: exit.
Bounded: at most --max-sockets leaked sockets and --max-seconds of run time.
Standard library only.
"""
import argparse
import ctypes
import signal
import socket
import sys
import time

PR_SET_NAME = 15


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="leaky-app", help="process name (comm, at most 15 bytes)")
    ap.add_argument("--connect", default="127.0.0.1:3306", help="HOST:PORT of tests/e2e/dbserver.py")
    ap.add_argument("--rate", type=float, default=5.0, help="leaked sockets per second")
    ap.add_argument("--max-sockets", type=int, default=900)
    ap.add_argument("--max-seconds", type=float, default=240.0)
    args = ap.parse_args()

    name = args.name.encode()[:15]
    if ctypes.CDLL(None).prctl(PR_SET_NAME, name, 0, 0, 0) != 0:
        sys.exit("leaker: prctl(PR_SET_NAME) failed")
    host, port = args.connect.rsplit(":", 1)
    addr = (host, int(port))

    stop = {"leak": False}
    signal.signal(signal.SIGUSR1, lambda *_: stop.update(leak=True))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    leaked, healthy = [], 0
    start = time.monotonic()
    deadline = start + args.max_seconds
    tick = 1.0 / args.rate
    next_at, next_report = start, start
    print(f"leaker {name.decode()}: leaking {args.rate}/s to {args.connect}", flush=True)
    while not stop["leak"] and time.monotonic() < deadline and len(leaked) < args.max_sockets:
        s = socket.create_connection(addr, timeout=5)
        s.sendall(b"L")  # the server answers and closes: CLOSE_WAIT here, never read, never closed
        leaked.append(s)
        h = socket.create_connection(addr, timeout=5)
        h.sendall(b"H")  # the server waits for our FIN: we close first (TIME_WAIT here)
        h.close()
        healthy += 1
        now = time.monotonic()
        if now >= next_report:
            print(f"leaker: t={now - start:.1f}s leaked={len(leaked)} healthy={healthy}", flush=True)
            next_report += 5
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(f"leaker: stopped leaking at t={time.monotonic() - start:.1f}s with {len(leaked)} leaked sockets "
          f"({'SIGUSR1' if stop['leak'] else 'bound reached'})", flush=True)
    while not stop["leak"] and time.monotonic() < deadline:
        time.sleep(0.05)
    for s in leaked:
        s.close()
    print(f"leaker: closed {len(leaked)} leaked sockets at t={time.monotonic() - start:.1f}s", flush=True)
    while time.monotonic() < deadline:  # stay alive (idle) until killed by pid, bounded
        time.sleep(0.2)


if __name__ == "__main__":
    main()
