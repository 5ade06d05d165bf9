#!/usr/bin/env python3
"""Write a time-compressed copy of the shipped rule files, for fast end-to-end tests.

The shipped rules (grafana/rules/*.yml) wait 5 to 30 minutes before they fire, on purpose.
An end-to-end test (real exporter, Prometheus at 1s scrape/evaluation, Alertmanager) cannot
wait that long, and must not test edited copies of the rules either. This script rewrites
only durations, into another directory, and leaves everything else (expressions, thresholds,
labels, annotations) exactly as shipped:

  * `for: D`                     -> D / SCALE   (or the fixed value of --for)
  * `interval: D` (group)        -> D / SCALE
  * range selectors `[D]`, subqueries `[D:R]`, and `offset D` inside expressions
                                 -> D / SCALE, never below --min-range

Usage:
  python3 grafana/tools/rules-overlay.py --scale 60 --out /tmp/rules grafana/rules/*.yml
  python3 grafana/tools/rules-overlay.py --scale 60 --for 2s --out /tmp/rules grafana/rules/*.yml

then point the test Prometheus at `rule_files: [/tmp/rules/*.yml]` (same file names).
With --scale 60 a minute becomes a second: `[30m]` -> `[30s]`, `for: 15m` -> `for: 15s`,
so scenarios keep the shipped proportions (a leak must last as many "seconds" as it would
have to last minutes). Recording rule names keep their suffix (`:rate5m` stays `:rate5m`)
and annotations keep saying "10 minutes": only the numbers the engine uses change.

Prints one line per rewritten duration to stderr, and fails (exit 1) if a file has no
duration at all (wrong input) or a duration it cannot parse.
Standard library only (python3 >= 3.8).
"""
import argparse
import os
import re
import sys

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
DUR = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
DUR_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
RANGE_RE = re.compile(r"\[(" + DUR + r")(?::(" + DUR + r")?)?\]")
OFFSET_RE = re.compile(r"\boffset\s+(-?)(" + DUR + r")\b")
FOR_RE = re.compile(r"^(\s*(?:-\s+)?for:\s*)(['\"]?)(" + DUR + r")\2(\s*(?:#.*)?)$")
INTERVAL_RE = re.compile(r"^(\s*(?:-\s+)?interval:\s*)(['\"]?)(" + DUR + r")\2(\s*(?:#.*)?)$")


def parse_ms(text):
    total, pos = 0, 0
    for m in DUR_PART.finditer(text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += int(m.group(1)) * UNITS_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


def format_ms(ms):
    if ms == 0:
        return "0s"
    for unit in ("h", "m", "s"):
        if ms % UNITS_MS[unit] == 0:
            return f"{ms // UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


class Rewriter:
    def __init__(self, scale, fixed_for_ms, min_range_ms):
        self.scale = scale
        self.fixed_for_ms = fixed_for_ms
        self.min_range_ms = min_range_ms
        self.log = []

    def scaled(self, text, floor_ms):
        exact = parse_ms(text) / self.scale
        # Whole seconds from 1s up (Prometheus and readers like "10s"), milliseconds below.
        new = round(exact / 1000) * 1000 if exact >= 1000 else round(exact)
        return format_ms(max(floor_ms, new))

    def line(self, where, line):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            return line
        m = FOR_RE.match(line)
        if m:
            old = m.group(3)
            new = format_ms(self.fixed_for_ms) if self.fixed_for_ms is not None else self.scaled(old, 0)
            self.log.append(f"{where}: for: {old} -> {new}")
            return f"{m.group(1)}{new}{m.group(4)}"
        m = INTERVAL_RE.match(line)
        if m:
            old = m.group(3)
            new = self.scaled(old, 1000)
            self.log.append(f"{where}: interval: {old} -> {new}")
            return f"{m.group(1)}{new}{m.group(4)}"

        def rng(mm):
            rng_new = self.scaled(mm.group(1), self.min_range_ms)
            res = mm.group(2)
            if res is not None:
                res_new = self.scaled(res, 1000)
                self.log.append(f"{where}: [{mm.group(1)}:{res}] -> [{rng_new}:{res_new}]")
                return f"[{rng_new}:{res_new}]"
            if ":" in mm.group(0):
                self.log.append(f"{where}: [{mm.group(1)}:] -> [{rng_new}:]")
                return f"[{rng_new}:]"
            self.log.append(f"{where}: [{mm.group(1)}] -> [{rng_new}]")
            return f"[{rng_new}]"

        def off(mm):
            new = self.scaled(mm.group(2), self.min_range_ms)
            self.log.append(f"{where}: offset {mm.group(1)}{mm.group(2)} -> offset {mm.group(1)}{new}")
            return f"offset {mm.group(1)}{new}"

        line = RANGE_RE.sub(rng, line)
        return OFFSET_RE.sub(off, line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory to write the rewritten files to (created)")
    ap.add_argument("--scale", type=float, default=60.0,
                    help="divide every duration by this (default 60: a minute becomes a second)")
    ap.add_argument("--for", dest="fixed_for", metavar="DURATION",
                    help="set every `for:` to this instead of scaling it (e.g. 0s, 2s)")
    ap.add_argument("--min-range", default="3s", metavar="DURATION",
                    help="lower bound for rewritten ranges and offsets (default 3s: at a 1s scrape "
                         "interval rate() and deriv() still see at least 2 samples)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.scale <= 0:
        ap.error("--scale must be > 0")
    try:
        fixed = parse_ms(args.fixed_for) if args.fixed_for is not None else None
        min_range = parse_ms(args.min_range)
    except ValueError as e:
        ap.error(str(e))

    os.makedirs(args.out, exist_ok=True)
    rw = Rewriter(args.scale, fixed, min_range)
    failed = False
    for path in args.files:
        before = len(rw.log)
        out_lines = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    out_lines.append(rw.line(f"{os.path.basename(path)}:{n}", line.rstrip("\n")))
                except ValueError as e:
                    print(f"{path}:{n}: {e}", file=sys.stderr)
                    failed = True
        if len(rw.log) == before:
            print(f"{path}: no duration found: is this a Prometheus rule file?", file=sys.stderr)
            failed = True
        dest = os.path.join(args.out, os.path.basename(path))
        with open(dest, "w", encoding="utf-8") as f:
            f.write(f"# GENERATED by grafana/tools/rules-overlay.py --scale {args.scale:g}"
                    f"{' --for ' + args.fixed_for if args.fixed_for is not None else ''} from {path}.\n"
                    "# Test copy with compressed durations: do not ship.\n")
            f.write("\n".join(out_lines) + "\n")
    for entry in rw.log:
        print(entry, file=sys.stderr)
    print(f"rules-overlay: {len(rw.log)} durations rewritten into {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
