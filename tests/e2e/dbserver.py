#!/usr/bin/env python3
"""The server side of the end-to-end test's leak (tests/checks/30-e2e.sh).

    python3 tests/e2e/dbserver.py --name fake-mysqld --listen 127.0.0.1:3306

Plays the database / load balancer of docs/incidents.md #3. For each connection it reads the first
byte: "L" -> answers a short error line and closes at once (like a load balancer dropping an
idle connection), leaving the client's socket in CLOSE_WAIT until the client closes it;
"H" -> waits for the client's FIN and closes then (the client closed first). Bounded by
--max-seconds; SIGTERM exits. Standard library only.
"""
import argparse
import ctypes
import selectors
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="fake-mysqld")
    ap.add_argument("--listen", default="127.0.0.1:3306")
    ap.add_argument("--backlog", type=int, default=128)
    ap.add_argument("--max-seconds", type=float, default=240.0)
    args = ap.parse_args()
    ctypes.CDLL(None).prctl(15, args.name.encode()[:15], 0, 0, 0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    host, port = args.listen.rsplit(":", 1)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, int(port)))
    lsock.listen(args.backlog)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    print(f"dbserver {args.name}: listening on {args.listen}", flush=True)
    counts = {"L": 0, "H": 0}
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.data is None:
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            conn = key.fileobj
            try:
                data = conn.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data.startswith(b"L"):
                counts["L"] += 1
                try:
                    conn.send(b"idle timeout\n")
                except OSError:
                    pass
            elif data.startswith(b"H"):
                counts["H"] += 1
                continue  # wait for the client's FIN
            sel.unregister(conn)
            conn.close()
    print(f"dbserver: done, closed {counts['L']} leaked and {counts['H']} healthy connections", flush=True)


if __name__ == "__main__":
    main()
