#!/usr/bin/env python3
"""Webhook receiver of the end-to-end test (tests/checks/30-e2e.sh).

    python3 tests/e2e/receiver.py --listen 127.0.0.1:9095 --out notifications.jsonl

Records every POST (Alertmanager webhook payload, version 4) as one JSON line:
{"received": unix time, "path": "/pager", "payload": {...}}. The test Alertmanager
configuration (tests/e2e/am-config.py) points each receiver at /<receiver name>. GET /-/ready
answers 200. Bounded by --max-seconds; SIGTERM exits. Standard library only.
"""
import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:9095")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    args = ap.parse_args()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {"unparsable": body.decode(errors="replace")}
            line = json.dumps({"received": time.time(), "path": self.path, "payload": payload})
            with LOCK:
                out.write(line + "\n")
                out.flush()
            alerts = payload.get("alerts", []) if isinstance(payload, dict) else []
            print(f"receiver: POST {self.path} status={payload.get('status') if isinstance(payload, dict) else '?'} "
                  f"alerts={[a.get('labels', {}).get('alertname') for a in alerts]}", flush=True)
            self.send_response(200)
            self.end_headers()

        def do_GET(self):
            self.send_response(200 if self.path == "/-/ready" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    host, port = args.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    timer = threading.Timer(args.max_seconds, srv.shutdown)
    timer.daemon = True
    timer.start()
    print(f"receiver: listening on {args.listen}, writing {args.out}", flush=True)
    srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
