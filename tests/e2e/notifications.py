#!/usr/bin/env python3
"""Assertions on the notifications recorded by tests/e2e/receiver.py (one JSON line per POST).

  wait     --file F --receiver R --alertname A --status firing|resolved [--label k=v ...]
           [--labels-from FILE] [--save FILE] [--summary-contains TEXT ...] --timeout S
           Poll F (every 0.2 s, at most S seconds) until a webhook notification (payload
           version 4) posted to /R with receiver R carries an alert named A with that status
           and those labels (--labels-from: exactly the label set saved by an earlier --save).
           Prints it; --save writes its labels as JSON. Exit 1 with everything received on
           timeout.
  only     --file F --receiver R --alertname A[|B...] [--netns RE]   every alert delivered to R is named A (or B...)
  never    --file F --receiver R --alertname A [--netns RE]   no alert named A was delivered to R
           --netns: only alerts whose netns label fully matches RE, or that have none, count
           (the exporter sees every namespace on the machine; others' alerts are listed)
  summary  --file F                              one line per notification
Standard library only.
"""
import argparse
import json
import re
import sys
import time


def load(path):
    recs = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass  # a line being written
    except FileNotFoundError:
        pass
    return recs


def describe(rec, t0=None):
    p = rec.get("payload", {})
    alerts = "; ".join(
        f"{a.get('status')} {a.get('labels', {}).get('alertname')} "
        + ",".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items()) if k != "alertname")
        for a in p.get("alerts", []))
    when = f"+{rec['received'] - t0:.1f}s" if t0 else time.strftime("%H:%M:%S", time.localtime(rec["received"]))
    return f"{when} POST {rec.get('path')} receiver={p.get('receiver')} version={p.get('version')} status={p.get('status')}: {alerts}"


def delivered(recs, receiver):
    """(record, alert) pairs delivered to RECEIVER; the URL path and the payload must agree."""
    for rec in recs:
        p = rec.get("payload", {})
        if rec.get("path") == f"/{receiver}" or p.get("receiver") == receiver:
            for a in p.get("alerts", []):
                yield rec, a


def cmd_wait(args):
    want = dict(kv.split("=", 1) for kv in args.label)
    exact = None
    if args.labels_from:
        with open(args.labels_from, encoding="utf-8") as fh:
            exact = json.load(fh)
    deadline = time.monotonic() + args.timeout
    while True:
        recs = load(args.file)
        for rec, a in delivered(recs, args.receiver):
            p = rec["payload"]
            labels = a.get("labels", {})
            if (p.get("version") == "4" and rec.get("path") == f"/{args.receiver}"
                    and p.get("receiver") == args.receiver
                    and a.get("status") == args.status and labels.get("alertname") == args.alertname
                    and all(labels.get(k) == v for k, v in want.items())
                    and (exact is None or labels == exact)):
                summary = a.get("annotations", {}).get("summary", "")
                missing = [t for t in args.summary_contains if t not in summary]
                if missing:
                    print(f"FAIL {args.status} {args.alertname} at {args.receiver}: summary {summary!r} "
                          f"does not name {missing}")
                    return 1
                print(f"ok: {args.status} notification at receiver {args.receiver}: {describe(rec)}")
                print(f"    summary: {summary}")
                print(f"    startsAt={a.get('startsAt')} endsAt={a.get('endsAt')} runbook_url={a.get('annotations', {}).get('runbook_url')}")
                if args.save:
                    with open(args.save, "w", encoding="utf-8") as fh:
                        json.dump(labels, fh)
                return 0
        if time.monotonic() >= deadline:
            print(f"FAIL: no {args.status} notification for {args.alertname} {want or ''}"
                  f"{' with labels ' + json.dumps(exact) if exact else ''} at receiver {args.receiver} "
                  f"within {args.timeout:.0f} s; received {len(recs)} notifications:")
            for rec in recs:
                print("    " + describe(rec))
            return 1
        time.sleep(0.2)


def in_scope(args, alert):
    netns = alert.get("labels", {}).get("netns")
    return args.netns is None or not netns or re.fullmatch(args.netns, netns) is not None


def scoped(args):
    alerts = list(delivered(load(args.file), args.receiver))
    for r, a in alerts:
        if not in_scope(args, a):
            print(f"ignored, outside the scenario's namespaces: {describe(r)}")
    return [(r, a) for r, a in alerts if in_scope(args, a)]


def cmd_only(args):
    allowed = args.alertname.split("|")
    bad = [(r, a) for r, a in scoped(args)
           if a.get("labels", {}).get("alertname") not in allowed]
    for r, _ in bad:
        print(f"FAIL unexpected alert at receiver {args.receiver}: {describe(r)}")
    if not bad:
        print(f"ok: receiver {args.receiver} got only {args.alertname}")
    return 1 if bad else 0


def cmd_never(args):
    bad = [(r, a) for r, a in scoped(args)
           if a.get("labels", {}).get("alertname") == args.alertname]
    for r, _ in bad:
        print(f"FAIL {args.alertname} must not reach receiver {args.receiver}: {describe(r)}")
    if not bad:
        print(f"ok: receiver {args.receiver} never got {args.alertname}")
    return 1 if bad else 0


def cmd_summary(args):
    recs = load(args.file)
    t0 = args.since
    print(f"{len(recs)} notifications" + (" (times from the start of the leak)" if t0 else "") + ":")
    for rec in recs:
        print("    " + describe(rec, t0))
    return 0


def main():
    ap = argparse.ArgumentParser(description="Check the webhook notifications of the e2e test.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--receiver", required=True)
    w.add_argument("--alertname", required=True)
    w.add_argument("--status", choices=["firing", "resolved"], required=True)
    w.add_argument("--label", action="append", default=[], metavar="K=V")
    w.add_argument("--labels-from", metavar="FILE")
    w.add_argument("--save", metavar="FILE")
    w.add_argument("--summary-contains", action="append", default=[], metavar="TEXT")
    w.add_argument("--timeout", type=float, required=True)
    for name in ("only", "never"):
        s = sub.add_parser(name)
        s.add_argument("--receiver", required=True)
        s.add_argument("--alertname", required=True)
        s.add_argument("--netns", metavar="RE")
    s = sub.add_parser("summary")
    s.add_argument("--since", type=float, help="print times relative to this unix time")
    for s in sub.choices.values():
        s.add_argument("--file", required=True)
    args = ap.parse_args()
    return {"wait": cmd_wait, "only": cmd_only, "never": cmd_never, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
