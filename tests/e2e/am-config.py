#!/usr/bin/env python3
"""Derive the end-to-end test's Alertmanager configuration from the shipped example.

    python3 tests/e2e/am-config.py --webhook http://127.0.0.1:9095 \
        grafana/alertmanager/alertmanager.yml > am-e2e.yml

The routing logic under test is the shipped one: `global`, the route tree (matchers,
receivers, group_by, repeat_interval, nesting) and `inhibit_rules` are copied line for line.
Only two things change:
  * timers: every `group_wait:` becomes 0s and every `group_interval:` 1s. The shipped
    10s/5m would hold the page for 10 s and the resolved notification for 5 minutes
    (group_interval paces every later notification of a group);
  * endpoints: in `receivers:`, each receiver that has integrations (`*_configs:`, e.g.
    PagerDuty for pager, the ticket webhook) gets one `webhook_configs` entry instead, to
    WEBHOOK/<receiver name> with send_resolved: true; a receiver without integrations
    ("null") stays without. Receiver names are kept as written.
Prints what it changed to stderr. Exit 1 if the file has no top-level `receivers:` list, a
receiver it cannot read, or a group_wait/group_interval it could not rewrite (e.g. flow
style). Standard library only (no YAML parser: a line-based rewrite of a block-style file).
"""
import argparse
import re
import sys

TIMERS = {"group_wait": "0s", "group_interval": "1s"}
TIMER_RE = re.compile(r"^(\s*(?:-\s+)?)(group_wait|group_interval)(\s*:\s*)(['\"]?)([0-9a-z]+)\4(\s*(?:#.*)?)$")
TOP_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")
NAME_RE = re.compile(r"^(\s*)-\s+name:\s*(['\"]?)([^'\"#]+?)\2\s*(#.*)?$")
INTEGRATION_RE = re.compile(r"^\s+[a-z_]+_configs\s*:")


def rewrite(text, webhook):
    lines = text.splitlines()
    out, changes, i = [], [], 0
    seen_timers = sum(len(re.findall(r"\b(group_wait|group_interval)\b", l.split("#", 1)[0])) for l in lines)
    rewritten_timers = 0
    receivers_found = False
    while i < len(lines):
        line = lines[i]
        top = TOP_RE.match(line)
        if top and top.group(1) == "receivers":
            receivers_found = True
            out.append(line)
            i += 1
            # the section ends at the next top-level key
            end = i
            while end < len(lines) and not TOP_RE.match(lines[end]):
                end += 1
            section = lines[i:end]
            items, current = [], None
            for l in section:
                m = NAME_RE.match(l)
                if m:
                    current = {"line": l, "indent": len(m.group(1)), "name": m.group(3).strip(), "body": []}
                    items.append(current)
                elif current is not None:
                    current["body"].append(l)
                elif l.strip() and not l.strip().startswith("#"):
                    raise ValueError(f"cannot read receivers line: {l!r}")
            if not items:
                raise ValueError("receivers: section without `- name:` entries")
            for it in items:
                out.append(it["line"])
                pad = " " * (it["indent"] + 2)
                if any(INTEGRATION_RE.match(l) for l in it["body"]):
                    kinds = sorted({INTEGRATION_RE.match(l).group(0).strip().rstrip(":").strip()
                                    for l in it["body"] if INTEGRATION_RE.match(l)})
                    out += [f"{pad}webhook_configs:",
                            f"{pad}  - url: {webhook.rstrip('/')}/{it['name']}",
                            f"{pad}    send_resolved: true"]
                    changes.append(f"receiver {it['name']}: {', '.join(kinds)} -> webhook {webhook.rstrip('/')}/{it['name']}")
                else:
                    changes.append(f"receiver {it['name']}: no integration, kept as is")
            i = end
            continue
        m = TIMER_RE.match(line)
        if m:
            new = f"{m.group(1)}{m.group(2)}{m.group(3)}{TIMERS[m.group(2)]}{m.group(6)}"
            changes.append(f"{m.group(2)}: {m.group(5)} -> {TIMERS[m.group(2)]} (line {i + 1})")
            rewritten_timers += 1
            line = new
        out.append(line)
        i += 1
    if not receivers_found:
        raise ValueError("no top-level receivers: section")
    if rewritten_timers != seen_timers:
        raise ValueError(f"found {seen_timers} group_wait/group_interval but could rewrite {rewritten_timers} "
                         "(only block style `key: value` lines are supported)")
    return "\n".join(out) + "\n", changes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--webhook", required=True, help="base URL of tests/e2e/receiver.py")
    ap.add_argument("config", help="the shipped alertmanager.yml")
    args = ap.parse_args()
    with open(args.config, encoding="utf-8") as fh:
        text = fh.read()
    try:
        new, changes = rewrite(text, args.webhook)
    except ValueError as e:
        print(f"am-config: {args.config}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(new)
    for c in changes:
        print(f"am-config: {c}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
