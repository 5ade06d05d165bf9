#!/usr/bin/env python3
"""Churn soak of sockdiag_exporter (issue 17): run by benches/soak.sh, never by hand.

`soak.py run` is PID 1 of a private network + PID + mount namespace (unshare -n -p -f
--mount-proc). It starts, each as its own process and each stopped by its pid:
  - the exporter (--namespaces=own, --poll.interval, debug log: one "poll done" line per poll);
  - `soak.py load` (comm soak_load): opens and closes TCP connections on loopback at a fixed
    rate, in four kinds: A client closes first (client TIME_WAIT, server CLOSE_WAIT held 1 s),
    B server closes first (server TIME_WAIT, client CLOSE_WAIT held 1 s), C reset (no
    TIME_WAIT), D like A over ::1 (hold 0.2 s); plus 100 ESTABLISHED pairs held throughout,
    and the accepting end of the churn listeners 7001 and 7002;
  - `soak.py churn` (comm soak_churn): forks processes at a fixed rate that each name
    themselves churn_a or churn_b, connect to 7001 (churn_a) or 7002 (churn_b), hold the
    socket (0 s, 0.3 s, or 2.5 s: CLOSE_WAIT once the server closes at 2 s) and exit.
    Before each fork it writes the pid of a child it has reaped to ns_last_pid, so pids
    are reused at once (the last reaped first with --pid-reuse lifo), and a reused pid
    always gets the other name. One fork in five is a pair: an instant child, reaped at
    once, then the next child on the same pid, often within the same clock tick, so that
    the two share a start time (the exporter's pid-reuse check cannot tell them apart).

Every scrape (one a second, over one keep-alive connection) is checked for wrong owner
names: a socket to or from 7001 can only be churn_a's (outbound) or soak_load's (inbound),
and so on for every port of the load; a name that contradicts that is a wrong name. `unknown`
(an owner that exited between the dump and the /proc scan) and "" (no owner) are not. Every
`--sample` seconds the exporter's RSS, fds and poll figures are recorded.

When the load stops, churn stops, the load closes what it had scheduled and opens a final
set (ESTABLISHED pairs, CLOSE_WAIT/FIN_WAIT2 pairs held by shutdown, one churn_a and one
churn_b holding connections), and nothing new starts. After TIME_WAIT and orphans have
expired (up to tcp_fin_timeout, 60 s), `ss` is read, the next poll that started after that
read is scraped, `ss` is read again; both ss reads must agree (settled) and the exporter's
counts per family and state, and per process, must equal them exactly.
"""

import datetime
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree for the two modules below
import soak_check  # noqa: E402
import soak_load  # noqa: E402
import soak_targets  # noqa: E402
from soak_check import WEB_PORT, exporter_counts, parse, ss_read, wrong_names  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Scraper:
    def __init__(self):
        self.conn = None
        self.connects = 0

    def get(self):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=10)
                self.connects += 1
            try:
                self.conn.request("GET", "/metrics")
                r = self.conn.getresponse()
                body = r.read().decode()
                if r.status != 200:
                    raise RuntimeError(f"/metrics answered {r.status}")
                return parse(body)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


class Checked:
    """Scrapes through `scraper`, each checked for wrong owner names."""

    def __init__(self, scraper, exporter_comm):
        self.scraper, self.exporter_comm = scraper, exporter_comm
        self.scrapes = self.wrong = self.with_unattributed = 0
        self.examples = []

    def check(self, m):
        self.scrapes += 1
        bad = wrong_names(m, self.exporter_comm)
        self.wrong += len(bad)
        self.examples += bad[: max(0, 5 - len(self.examples))]
        if value(m, "sockdiag_unattributed_sockets"):
            self.with_unattributed += 1
        return m

    def get(self):
        return self.check(self.scraper.get())


def value(metrics, name, **want):
    return sum(v for labels, v in metrics.get(name, []) if all(labels.get(k) == x for k, x in want.items()))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_figures(pid):
    rss = None
    cpu = cpu_seconds(pid)
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, cpu, anon


class FdSampler:
    """The exporter's descriptors, read every 20 ms while the orchestrator waits. `low` is
    the count between polls (a leak shows there); `high` includes the few a poll in flight
    holds for a moment (netlink, /proc directories)."""

    def __init__(self, pid):
        self.pid = pid
        self.reset()

    def reset(self):
        self.low, self.high = None, None

    def read(self):
        n = len(os.listdir(f"/proc/{self.pid}/fd"))
        self.low = n if self.low is None else min(self.low, n)
        self.high = n if self.high is None else max(self.high, n)
        return n

    def sleep_until(self, deadline):
        while time.monotonic() < deadline:
            self.read()
            time.sleep(0.02)


def malloc_stats(pid, log_path):
    """glibc's heap totals of the exporter (malloc_stats() called through gdb: it writes to
    the exporter's stderr, our log file): bytes in use and bytes held from the system.
    Pauses the exporter for about a second."""
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                   capture_output=True, timeout=120, check=True)
    with open(log_path) as f:
        text = f.read()
    total = text[text.rindex("Total (incl. mmap):"):].splitlines()
    figures = {}
    for line in total[1:3]:
        key, val = line.split("=")
        figures[key.strip().replace(" ", "_")] = int(val)
    return figures


def host_load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def polls_logged(path, since, until):
    """The "poll done" debug lines of the polls that ended between two wall-clock times:
    their fields (duration_ms, sockets, scans, readlinks, ...) and `ended` (Unix time)."""
    out = []
    with open(path) as f:
        for line in f:
            if '"poll done"' not in line:
                continue
            entry = json.loads(line)
            ended = datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            if since <= ended.timestamp() <= until:
                out.append(dict(entry["fields"], ended=ended.timestamp()))
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else None


def wait_file(path, timeout, proc=None):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[2]} exited: {proc.returncode}")
        if time.monotonic() > end:
            raise RuntimeError(f"{path} not written within {timeout} s")
        time.sleep(0.05)


def stop_pid(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def compare_settled(scraper, netns_poll, limit):
    """ss, then a poll that started after it, then ss again: settled and exactly equal."""
    for attempt in range(limit):
        ss1_time = time.time()
        ss1 = ss_read()
        ss1_done = time.time()
        while True:
            m = scraper.get()
            finished = value(m, "sockdiag_last_poll_success_timestamp_seconds")
            started = finished - value(m, "sockdiag_poll_duration_seconds")
            if started > ss1_done:
                break
            time.sleep(netns_poll)
        ss2 = ss_read()
        if ss1 == ss2:
            return {"ss_read_at": ss1_time, "poll_started_at": started, "ss": ss1,
                    "exporter": exporter_counts(m), "metrics": m, "attempts": attempt + 1}
        time.sleep(1)
    raise RuntimeError("ss never settled")


def start_holders(me, out, count, first_index, procs):
    """Holds `count` more ESTABLISHED sockets (pairs, both ends in one process), spread over
    holder processes (soak_hold) of at most the pairs one may keep; waits until all are
    held. Returns the next free holder index."""
    per = soak_load.hold_pairs_per_process()
    pairs = count // 2
    index = first_index
    started = []
    while pairs > 0:
        n = min(per, pairs)
        ready = os.path.join(out, f"hold-{index}.ready")
        procs[f"hold-{index}"] = subprocess.Popen([sys.executable, me, "hold", str(index), str(n), ready])
        started.append((ready, procs[f"hold-{index}"]))
        pairs -= n
        index += 1
        if index > 250:
            raise RuntimeError(f"holding {count} sockets needs more than 250 holders")
    for ready, proc in started:
        wait_file(ready, 600, proc)
    return index


def poll_started_after(checked, moment, interval):
    """Scrapes until the last poll published started after `moment`; returns its end."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        m = checked.get()
        finished = value(m, "sockdiag_last_poll_success_timestamp_seconds")
        if finished - value(m, "sockdiag_poll_duration_seconds") > moment:
            return finished
        time.sleep(interval)
    raise RuntimeError("no poll finished within 600 s")


def steady_phase(args, me, out, procs, holders, log_path, churn_window, checked):
    """The exporter's CPU per poll at the churn phase's socket count without churn: once
    the load has stopped and settled, holders fill up to the churn phase's median sockets
    per poll (ESTABLISHED pairs), and the polls of a quiet window are measured."""
    since, until, cpu, states = churn_window
    churn = polls_logged(log_path, since, until)
    if not churn:
        return None
    sockets_churn = statistics.median(p["sockets"] for p in churn)
    now = value(checked.get(), "sockdiag_sockets_scanned")
    filler = max(0, int(sockets_churn - now))
    # The churn phase's share of TIME_WAIT (cheaper to dump than an ESTABLISHED socket, and
    # without an owner to find) is made at once; the rest is held ESTABLISHED pairs.
    total = sum(states.values())
    time_wait = int(filler * sum(v for (_, st), v in states.items() if st == "time_wait") / total) if total else 0
    start_holders(me, out, filler - time_wait, holders, procs)
    made_at = time.monotonic()
    if time_wait:
        ready = os.path.join(out, "tw.ready")
        procs["hold-tw"] = subprocess.Popen([sys.executable, me, "tw", str(time_wait), ready])
        wait_file(ready, 120, procs["hold-tw"])
    # A poll that started after the filler was made (it reads the new sockets' fds), then
    # one more, before the window opens; the window ends before the first TIME_WAIT made
    # expires (60 s).
    after = time.time()
    for _ in range(2):
        after = poll_started_after(checked, after, args["poll"] / 1e3)
    seconds = min(55.0 - (time.monotonic() - made_at), 30.0, max(5.0, args["duration"] / 4))
    pid = procs["exporter"].pid
    began, cpu0 = time.time(), cpu_seconds(pid)
    while time.time() < began + seconds:
        checked.get()  # as in the churn phase: one scrape a second, names checked
        time.sleep(1)
    ended, cpu1 = time.time(), cpu_seconds(pid)
    steady = polls_logged(log_path, began, ended)
    return {
        "seconds": round(ended - began, 1), "filler_sockets": filler,
        "filler_time_wait": time_wait,
        "churn_window_s": round(until - since, 1), "churn_polls": len(churn),
        "churn_sockets_median": sockets_churn,
        "churn_cpu_ms_per_poll": 1e3 * cpu / len(churn),
        "steady_polls": len(steady),
        "steady_sockets_median": statistics.median(p["sockets"] for p in steady) if steady else None,
        "steady_cpu_ms_per_poll": 1e3 * (cpu1 - cpu0) / len(steady) if steady else None,
    }


def run_main(args):
    soak_load.set_comm("soak_run")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = args["out"]
    duration, sample, poll = args["duration"], args["sample"], args["poll"]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write("10000 65000")
    procs = {}
    me = os.path.abspath(__file__)
    # Held sockets first, so that the exporter's first (full) scan finds them: the churn
    # phase's polls then pay only for what is new.
    holders = start_holders(me, out, args["held"], 0, procs) if args["held"] else 0
    if args["held"]:
        log(f"holding {args['held']} sockets in {holders} processes")
    exlog = open(os.path.join(out, "exporter.log"), "w")
    procs["exporter"] = subprocess.Popen(
        [args["binary"], f"--poll.interval={poll}ms", "--namespaces=own",
         f"--web.listen-address=127.0.0.1:{WEB_PORT}", "--log.level=debug",
         "--log.format=json"], stdout=exlog, stderr=subprocess.STDOUT)
    try:
        scraper = Scraper()
        for _ in range(100):
            try:
                scraper.get()
                break
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        with open(f"/proc/{procs['exporter'].pid}/comm") as f:
            exporter_comm = f.read().strip()
        load_stats = os.path.join(out, "load.json")
        churn_stats = os.path.join(out, "churn.json")
        procs["load"] = subprocess.Popen([sys.executable, me, "load", str(args["rate"]), load_stats])
        wait_file(load_stats + ".ready", 30, procs["load"])
        procs["churn"] = subprocess.Popen([sys.executable, me, "churn", str(args["procs"]),
                                           churn_stats, args["reuse"]])
        t0 = time.monotonic()
        load_started = time.time()
        cpu_at_start = cpu_seconds(procs["exporter"].pid)
        # The churn phase's CPU per poll is taken over the second half of the load, once
        # the TIME_WAIT population has (mostly) built up.
        half = None
        series = open(os.path.join(out, "series.csv"), "w")
        series.write("seconds,rss_kib,fds,threads,cpu_seconds,load_cpu_seconds,poll_duration_ms,"
                     "sockets_scanned,unattributed,poll_errors,scrapes,wrong_names,fds_in_poll,"
                     "host_load_1m,rss_anon_kib\n")
        checked = Checked(scraper, exporter_comm)
        next_sample = sample  # each row covers the sample period before it
        pid = procs["exporter"].pid
        fdsampler = FdSampler(pid)
        heap = {}

        def moment(label):
            """RSS, CPU, RssAnon, fds between polls (over 1 s) and the heap, now."""
            rss, _, cpu, anon = proc_figures(pid)
            fdsampler.reset()
            fdsampler.sleep_until(time.monotonic() + 1)
            if args["malloc_stats"]:
                heap[label] = malloc_stats(pid, exlog.name)
            return rss, cpu, anon, fdsampler.low
        log(f"load running for {duration} s")
        while True:
            t = time.monotonic() - t0
            if t >= duration:
                break
            m = checked.get()
            if half is None and t >= duration / 2:
                half = (time.time(), cpu_seconds(procs["exporter"].pid))
            if args["malloc_stats"] and t >= 60 and "minute_1" not in heap:
                heap["minute_1"] = malloc_stats(pid, exlog.name)
            if t >= next_sample:
                rss, threads, cpu, anon = proc_figures(pid)
                fdsampler.read()
                fds, peak = fdsampler.low, fdsampler.high
                fdsampler.reset()
                load_cpu = cpu_seconds(procs["load"].pid)
                series.write(f"{t:.1f},{rss},{fds},{threads},{cpu:.2f},{load_cpu:.2f},"
                             f"{1e3 * value(m, 'sockdiag_poll_duration_seconds'):.2f},"
                             f"{value(m, 'sockdiag_sockets_scanned'):.0f},"
                             f"{value(m, 'sockdiag_unattributed_sockets'):.0f},"
                             f"{value(m, 'sockdiag_poll_errors_total'):.0f},{checked.scrapes},{checked.wrong},{peak},"
                             f"{host_load()},{anon}\n")
                series.flush()
                next_sample += sample
            for name in ("load", "churn", "exporter"):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited early: {procs[name].returncode}")
            fdsampler.sleep_until(t0 + int(t) + 1)
        load_stopped = time.time()
        cpu_now = cpu_seconds(procs["exporter"].pid)
        cpu_churn = cpu_now - cpu_at_start
        half = half or (load_started, cpu_at_start)
        churn_window = (half[0], load_stopped, cpu_now - half[1], exporter_counts(m)[0])
        rss_end, cpu_end, anon_end, fds_end = moment("end_of_load")
        log("load stopped; churn stops, then the final set")
        procs["churn"].send_signal(signal.SIGUSR1)
        wait_file(churn_stats, 120)
        procs["load"].send_signal(signal.SIGUSR1)
        wait_file(load_stats, 120)
        open(churn_stats + ".go", "w").close()
        wait_file(churn_stats + ".holders", 120)
        # Settled: TIME_WAIT and orphaned FIN_WAIT2 expire within 60 s of the last close.
        settle_start = time.monotonic()
        while True:
            states, _ = ss_read()
            if not states[("ipv4", "time_wait")] + states[("ipv6", "time_wait")]:
                break
            if time.monotonic() - settle_start > 90:
                raise RuntimeError("TIME_WAIT still present 90 s after the load stopped")
            checked.get()  # names are checked while it settles too
            time.sleep(2)
        settled = compare_settled(scraper, poll / 1e3, 10)
        final = checked.check(settled["metrics"])
        rss_final, _, anon_final, fds_final = moment("settled")
        series.close()
        steady = steady_phase(args, me, out, procs, holders, exlog.name, churn_window, checked)
        ss_states, ss_owners = settled["ss"]
        ex_states, ex_owners = settled["exporter"]
        state_diff = {f"{k[0]}/{k[1]}": [ss_states[k], ex_states[k]]
                      for k in set(ss_states) | set(ex_states) if ss_states[k] != ex_states[k]}
        owner_diff = {f"{k[0] or '-'}/{'listen' if k[1] else 'other'}": [ss_owners[k], ex_owners[k]]
                      for k in set(ss_owners) | set(ex_owners) if ss_owners[k] != ex_owners[k]}
        rows = [r.split(",") for r in open(os.path.join(out, "series.csv")).read().split("\n")[1:] if r]
        at_min1 = [r for r in rows if float(r[0]) >= 60.0]
        base = at_min1[0] if at_min1 else None
        churn_polls = polls_logged(os.path.join(out, "exporter.log"), load_started, load_stopped)
        durations = [float(p["duration_ms"]) for p in churn_polls]
        with open(load_stats) as f:
            load = json.load(f)
        with open(churn_stats) as f:
            churn = json.load(f)
        errors = {labels["stage"]: v for labels, v in final["sockdiag_poll_errors_total"] if v}
        summary = {
            "duration_s": duration, "poll_interval_ms": poll,
            "load": load, "churn": churn,
            "rss_kib": {"minute_1": int(base[1]) if base else None, "end_of_load": rss_end,
                        "settled": rss_final,
                        "max": max([rss_end, rss_final] + [int(r[1]) for r in rows])},
            "fds": {"minute_1": int(base[2]) if base else None, "end_of_load": fds_end,
                    "settled": fds_final,
                    "max": max([fds_end, fds_final] + [int(r[2]) for r in rows]),
                    "max_during_a_poll": max(int(r[12]) for r in rows)},
            "rss_anon_kib": {"minute_1": int(base[14]) if base else None, "end_of_load": anon_end,
                             "settled": anon_final,
                             "max": max([anon_end, anon_final] + [int(r[14]) for r in rows])},
            "heap_bytes": heap,
            "exporter_cpu_seconds_during_load": cpu_end,
            "polls_during_load": len(durations),
            "poll_ms": {"p50": pct(durations, 50), "p99": pct(durations, 99),
                        "max": max(durations) if durations else None,
                        "mean": statistics.fmean(durations) if durations else None},
            "exporter_cpu_seconds_churn_phase": cpu_churn,
            "held_sockets": args["held"],
            "steady_phase": steady,
            "poll_errors": errors,
            "scrapes": checked.scrapes, "scrape_connections": scraper.connects,
            "scrapes_with_unattributed": checked.with_unattributed,
            "wrong_names": checked.wrong, "wrong_examples": checked.examples,
            "settled": {"states_ss": {f"{k[0]}/{k[1]}": v for k, v in sorted(ss_states.items())},
                        "owners_ss": {f"{k[0] or '-'}/{'listen' if k[1] else 'other'}": v
                                      for k, v in sorted(ss_owners.items())},
                        "state_diff_ss_vs_exporter": state_diff,
                        "owner_diff_ss_vs_exporter": owner_diff,
                        "attempts": settled["attempts"],
                        "waited_after_stop_s": round(time.monotonic() - settle_start, 1)},
        }
        summary["targets"] = soak_targets.evaluate(summary, churn_polls, rows, args)
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1))
        table = soak_targets.markdown(summary, args)
        with open(os.path.join(out, "targets.md"), "w") as f:
            f.write(table)
        print(table)
        if args["report"]:
            soak_targets.write_report(args["report"], table)
            log(f"wrote {args['report']}")
        failures = []
        if not load["connections"] or not churn["processes"] or not churn["pid_reused"]:
            failures.append(f"the load did not run: {load['connections']} connections, "
                            f"{churn['processes']} processes, {churn['pid_reused']} pids reused")
        if errors:
            failures.append(f"poll errors: {errors}")
        if checked.wrong:
            failures.append(f"{checked.wrong} wrong owner names, e.g. {checked.examples}")
        if state_diff:
            failures.append(f"counts per state differ from ss (ss, exporter): {state_diff}")
        if owner_diff:
            failures.append(f"counts per process differ from ss (ss, exporter): {owner_diff}")
        if args["targets"] and base:
            b = int(base[2])
            worst = max(int(r[2]) for r in at_min1)
            if worst > b * 1.1:
                failures.append(f"fds grew past 10% of minute 1: {b} -> max {worst}")
        if args["targets"]:
            failures += [f"target missed: {t['target']}: {t['measured']} (limit {t['limit']})"
                         for t in summary["targets"] if t["verdict"] == "missed"]
        for f in failures:
            print(f"FAIL: {f}")
        return 1 if failures else 0
    finally:
        for name in ["churn", "load", "exporter"] + [n for n in procs if n.startswith("hold-")]:
            if name in procs:
                stop_pid(procs[name])
        exlog.close()


def main():
    mode = sys.argv[1]
    if mode == "selftest":
        soak_check.selftest()
        soak_targets.selftest()
    elif mode == "load":
        soak_load.load_main(float(sys.argv[2]), sys.argv[3])
    elif mode == "tw":
        soak_load.time_wait_main(int(sys.argv[2]), sys.argv[3])
    elif mode == "hold":
        soak_load.hold_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif mode == "churn":
        soak_load.churn_main(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif mode == "run":
        a = sys.argv[2:]
        args = {"binary": a[0], "out": a[1], "duration": float(a[2]), "rate": float(a[3]),
                "procs": float(a[4]), "poll": int(a[5]), "sample": float(a[6]),
                "targets": a[7] == "1", "reuse": a[8], "malloc_stats": a[9] == "1",
                "held": int(a[10]), "report": a[11]}
        sys.exit(run_main(args))


if __name__ == "__main__":
    main()
