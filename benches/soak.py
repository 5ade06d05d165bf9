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

import collections
import ctypes
import datetime
import errno
import http.client
import json
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

WEB_PORT = 9900
CHURN_PORT = {"churn_a": 7001, "churn_b": 7002}
LOAD_PORTS = (8001, 8002, 8003, 8004, 8005)
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


def set_comm(name):
    LIBC.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- load (soak_load)

class Stop:
    """Set by a signal handler; polled by the loops."""

    def __init__(self):
        self.stop = False
        self.final = False

    def on_usr1(self, *_):
        self.stop = True

    def on_term(self, *_):
        self.final = True


def listener(addr, port, family=socket.AF_INET, blocking=True):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4096)
    s.setblocking(blocking)
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def load_main(rate, stats_path):
    set_comm("soak_load")
    # About 2,000 sockets are held at once (CLOSE_WAIT for 1 s, the steady pairs).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    st = Stop()
    signal.signal(signal.SIGUSR1, st.on_usr1)
    signal.signal(signal.SIGTERM, st.on_term)
    la = [listener("127.0.0.1", 8001), listener("127.0.0.2", 8001)]
    lb = listener("127.0.0.1", 8002)
    lc = listener("127.0.0.1", 8003)
    ld = listener("::1", 8004, socket.AF_INET6)
    le = listener("127.0.0.1", 8005)
    churn = [listener("127.0.0.1", p, blocking=False) for p in CHURN_PORT.values()]
    # Held throughout: a server's steady connections.
    held = []
    for _ in range(100):
        c = socket.create_connection(("127.0.0.1", 8005))
        held += [c, le.accept()[0]]
    pending = collections.deque()  # (close at, socket, reset?) in time order per hold
    pending_d = collections.deque()
    churn_pending = collections.deque()
    counts = collections.Counter()
    errors = collections.Counter()
    kinds = ("a", "a", "a", "a", "b", "b", "b", "c", "c", "d")  # 40/30/20/10 %, cycled
    start = time.monotonic()
    n = 0
    ready = open(stats_path + ".ready", "w")
    ready.close()

    def accept_churn(hold):
        for lst in churn:
            while True:
                try:
                    s, _ = lst.accept()
                except BlockingIOError:
                    break
                counts["churn_accepted"] += 1
                if hold is None:
                    held.append(s)
                else:
                    churn_pending.append((time.monotonic() + hold, s))

    def close_due(now, queue):
        while queue and queue[0][0] <= now:
            queue.popleft()[1].close()

    while not st.stop and not st.final:
        now = time.monotonic()
        due = int((now - start) * rate)
        if due - n > rate:
            # More than a second behind (the CPU was elsewhere): drop the backlog rather
            # than open it in one burst; counted, so the rate reported is the one achieved.
            counts["skipped"] += due - n - int(rate)
            n = due - int(rate)
        while n < due:
            if n % 64 == 0:
                close_due(time.monotonic(), pending)
            kind = kinds[n % len(kinds)]
            try:
                if kind == "a":
                    lst = la[n // len(kinds) % 2]
                    c = socket.create_connection(lst.getsockname())
                    s, _ = lst.accept()
                    c.close()
                    pending.append((now + 1.0, s))
                elif kind == "b":
                    c = socket.create_connection(("127.0.0.1", 8002))
                    s, _ = lb.accept()
                    s.close()
                    pending.append((now + 1.0, c))
                elif kind == "c":
                    c = socket.create_connection(("127.0.0.1", 8003))
                    s, _ = lc.accept()
                    rst_close(c)
                    s.close()
                else:
                    c = socket.create_connection(("::1", 8004))
                    s, _ = ld.accept()
                    c.close()
                    pending_d.append((now + 0.2, s))
                counts[kind] += 1
            except OSError as e:
                errors[errno.errorcode.get(e.errno, str(e.errno))] += 1
            n += 1
        close_due(now, pending)
        close_due(now, pending_d)
        accept_churn(2.0)
        close_due(now, churn_pending)
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    # Stopped: close what was scheduled, then open the final set and hold it.
    for q in (pending, pending_d, churn_pending):
        while q:
            q.popleft()[1].close()
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", 8001))
        held += [c, la[0].accept()[0]]
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", 8002))
        s, _ = lb.accept()
        c.shutdown(socket.SHUT_WR)  # c: FIN_WAIT2, held (no orphan timeout); s: CLOSE_WAIT
        held += [c, s]
    for _ in range(10):
        c = socket.create_connection(("::1", 8004))
        held += [c, ld.accept()[0]]
    total = sum(counts[k] for k in "abcd")
    with open(stats_path, "w") as f:
        json.dump({"seconds": elapsed, "connections": total, "per_second": total / elapsed,
                   "by_kind": {k: counts[k] for k in "abcd"}, "errors": dict(errors),
                   "churn_accepted": counts["churn_accepted"],
                   "skipped_behind": counts["skipped"]}, f)
    while not st.final:
        accept_churn(None)  # the final churn holders connect after the stop: hold them
        time.sleep(0.05)


# ---------------------------------------------------------------- churn (soak_churn)

def churn_child(name, kind):
    set_comm(name)
    try:
        c = socket.create_connection(("127.0.0.1", CHURN_PORT[name]))
        if kind == "hold":
            time.sleep(0.3)
        elif kind == "close_wait":
            time.sleep(2.5)  # the server closes at 2 s: CLOSE_WAIT held by this name
        c.close()
    finally:
        os._exit(0)


def final_holder(name, count):
    set_comm(name)
    conns = [socket.create_connection(("127.0.0.1", CHURN_PORT[name])) for _ in range(count)]
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    while conns:
        time.sleep(3600)


def start_time(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot); a zombie still has it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def churn_main(rate, stats_path, reuse):
    set_comm("soak_churn")
    st = Stop()
    signal.signal(signal.SIGUSR1, st.on_usr1)
    signal.signal(signal.SIGTERM, st.on_term)
    last_name = {}
    free = collections.deque()  # pids reaped: the next fork takes one back at once
    reaped_at = {}
    alive = set()
    stats = collections.Counter()
    gaps = []
    # "pair": an instant child, reaped at once, then the next child on the same pid, so
    # that both often start within one clock tick (the same start time in /proc/PID/stat).
    kinds = ("instant", "hold", "pair", "hold", "close_wait")
    start = time.monotonic()
    n = 0

    def reap():
        while alive:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            alive.discard(pid)
            free.append(pid)
            reaped_at[pid] = time.monotonic()

    def spawn(kind, wanted):
        if wanted is not None:
            try:
                with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                    f.write(str(wanted - 1))
            except OSError:
                stats["ns_last_pid_errors"] += 1
        pid = os.fork()
        me = os.getpid() if pid == 0 else pid
        name = "churn_b" if last_name.get(me) == "churn_a" else "churn_a"
        if pid == 0:
            churn_child(name, kind)
        if pid in last_name:
            stats["pid_reused"] += 1
            if pid in reaped_at:
                gaps.append(time.monotonic() - reaped_at.pop(pid))
        last_name[pid] = name
        stats[name] += 1
        stats["forks"] += 1
        return pid

    while not st.stop and not st.final:
        now = time.monotonic()
        reap()
        due = int((now - start) * rate)
        while n < due:
            kind = kinds[n % len(kinds)]
            wanted = (free.pop() if reuse == "lifo" else free.popleft()) if free else None
            if kind == "pair":
                first = spawn("instant", wanted)
                first_start = start_time(first)
                os.waitpid(first, 0)
                reaped_at[first] = time.monotonic()
                second = spawn("hold", first)
                if second == first and first_start is not None and start_time(second) == first_start:
                    stats["same_tick_reuse"] += 1
                alive.add(second)
                n += 2
            else:
                alive.add(spawn(kind, wanted))
                n += 1
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    while alive:
        reap()
        time.sleep(0.01)
    gaps.sort()
    with open(stats_path, "w") as f:
        json.dump({"seconds": elapsed, "processes": stats["forks"],
                   "per_second": stats["forks"] / elapsed, "pid_reused": stats["pid_reused"],
                   "distinct_pids": len(last_name), "churn_a": stats["churn_a"],
                   "churn_b": stats["churn_b"],
                   "pid_reuse": reuse, "same_tick_reuse": stats["same_tick_reuse"],
                   "reuse_gap_ms_p50": 1e3 * gaps[len(gaps) // 2] if gaps else None,
                   "ns_last_pid_errors": stats["ns_last_pid_errors"]}, f)
    # Final holders, kept until SIGTERM: a churn_a with 3 connections, a churn_b with 2,
    # once the load holds every connection it accepts (it has stopped).
    while not os.path.exists(stats_path + ".go") and not st.final:
        time.sleep(0.05)
    holders = []
    for name, count in (("churn_a", 3), ("churn_b", 2)):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            final_holder(name, count)
            os._exit(0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        holders.append(pid)
    with open(stats_path + ".holders", "w") as f:
        f.write(" ".join(map(str, holders)))
    while not st.final:
        time.sleep(0.05)
    for pid in holders:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


# ---------------------------------------------------------------- exposition and ss

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


def expected_owner(direction, port):
    """Who may hold a socket of this series: the one true name, by construction."""
    if port == str(WEB_PORT):
        return "soak_run" if direction == "outbound" else EXPORTER_COMM
    for name, p in CHURN_PORT.items():
        if port == str(p):
            return name if direction == "outbound" else "soak_load"
    if port in map(str, LOAD_PORTS):
        return "soak_load"
    return None


EXPORTER_COMM = "sockdiag_export"


def wrong_names(metrics):
    """Series whose process contradicts the truth; `unknown` and "" are never wrong."""
    wrong = []
    for labels, v in metrics["sockdiag_tcp_port_sockets"]:
        proc = labels["process"]
        if not v or proc in ("", "unknown"):
            continue
        if proc != expected_owner(labels["direction"], labels["port"]):
            wrong.append(labels | {"value": v})
    for labels, _ in metrics["sockdiag_tcp_listen_queue_length"]:
        if labels["process"] not in ("unknown", expected_owner("inbound", labels["port"])):
            wrong.append(labels)
    return wrong


# ---------------------------------------------------------------- run (PID 1)

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


def poll_durations(path, since, until):
    """Durations of the polls that ended between two wall-clock times, from the log."""
    out = []
    with open(path) as f:
        for line in f:
            if '"poll done"' not in line:
                continue
            entry = json.loads(line)
            ended = datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            if since <= ended.timestamp() <= until:
                out.append(float(entry["fields"]["duration_ms"]))
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


def run_main(args):
    set_comm("soak_run")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = args["out"]
    duration, sample, poll = args["duration"], args["sample"], args["poll"]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write("10000 65000")
    procs = {}
    exlog = open(os.path.join(out, "exporter.log"), "w")
    procs["exporter"] = subprocess.Popen(
        [args["binary"], f"--poll.interval={poll}ms", "--namespaces=own",
         f"--web.listen-address=127.0.0.1:{WEB_PORT}", "--log.level=debug",
         "--log.format=json"], stdout=exlog, stderr=subprocess.STDOUT)
    me = os.path.abspath(__file__)
    try:
        global EXPORTER_COMM
        scraper = Scraper()
        for _ in range(100):
            try:
                scraper.get()
                break
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        with open(f"/proc/{procs['exporter'].pid}/comm") as f:
            EXPORTER_COMM = f.read().strip()
        load_stats = os.path.join(out, "load.json")
        churn_stats = os.path.join(out, "churn.json")
        procs["load"] = subprocess.Popen([sys.executable, me, "load", str(args["rate"]), load_stats])
        wait_file(load_stats + ".ready", 30, procs["load"])
        procs["churn"] = subprocess.Popen([sys.executable, me, "churn", str(args["procs"]),
                                           churn_stats, args["reuse"]])
        t0 = time.monotonic()
        load_started = time.time()
        series = open(os.path.join(out, "series.csv"), "w")
        series.write("seconds,rss_kib,fds,threads,cpu_seconds,load_cpu_seconds,poll_duration_ms,"
                     "sockets_scanned,unattributed,poll_errors,scrapes,wrong_names,fds_in_poll,"
                     "host_load_1m,rss_anon_kib\n")
        scrapes = wrong = unknown_scrapes = 0
        wrong_examples = []
        next_sample = 0.0
        pid = procs["exporter"].pid
        fdsampler = FdSampler(pid)
        heap = {}
        log(f"load running for {duration} s")
        while True:
            t = time.monotonic() - t0
            if t >= duration:
                break
            m = scraper.get()
            scrapes += 1
            bad = wrong_names(m)
            if bad:
                wrong += len(bad)
                wrong_examples += bad[: 5 - len(wrong_examples)]
            if value(m, "sockdiag_unattributed_sockets"):
                unknown_scrapes += 1
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
                             f"{value(m, 'sockdiag_poll_errors_total'):.0f},{scrapes},{wrong},{peak},"
                             f"{host_load()},{anon}\n")
                series.flush()
                next_sample += sample
            for name in ("load", "churn", "exporter"):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited early: {procs[name].returncode}")
            fdsampler.sleep_until(t0 + int(t) + 1)
        load_stopped = time.time()
        rss_end, _, cpu_end, anon_end = proc_figures(pid)
        fdsampler.reset()
        fdsampler.sleep_until(time.monotonic() + 1)
        fds_end = fdsampler.low
        if args["malloc_stats"]:
            heap["end_of_load"] = malloc_stats(pid, exlog.name)
        log("load stopped; churn stops, then the final set")
        procs["churn"].send_signal(signal.SIGUSR1)
        wait_file(churn_stats, 30)
        procs["load"].send_signal(signal.SIGUSR1)
        wait_file(load_stats, 30)
        open(churn_stats + ".go", "w").close()
        wait_file(churn_stats + ".holders", 30)
        # Settled: TIME_WAIT and orphaned FIN_WAIT2 expire within 60 s of the last close.
        settle_start = time.monotonic()
        while True:
            states, _ = ss_read()
            if not states[("ipv4", "time_wait")] + states[("ipv6", "time_wait")]:
                break
            if time.monotonic() - settle_start > 90:
                raise RuntimeError("TIME_WAIT still present 90 s after the load stopped")
            m = scraper.get()  # keeps checking names while it settles
            scrapes += 1
            bad = wrong_names(m)
            wrong += len(bad)
            wrong_examples += bad[: max(0, 5 - len(wrong_examples))]
            time.sleep(2)
        settled = compare_settled(scraper, poll / 1e3, 10)
        final = settled["metrics"]
        bad = wrong_names(final)
        wrong += len(bad)
        rss_final, _, _, anon_final = proc_figures(pid)
        fdsampler.reset()
        fdsampler.sleep_until(time.monotonic() + 1)
        fds_final = fdsampler.low
        if args["malloc_stats"]:
            heap["settled"] = malloc_stats(pid, exlog.name)
        series.close()
        ss_states, ss_owners = settled["ss"]
        ex_states, ex_owners = settled["exporter"]
        state_diff = {f"{k[0]}/{k[1]}": [ss_states[k], ex_states[k]]
                      for k in set(ss_states) | set(ex_states) if ss_states[k] != ex_states[k]}
        owner_diff = {f"{k[0] or '-'}/{'listen' if k[1] else 'other'}": [ss_owners[k], ex_owners[k]]
                      for k in set(ss_owners) | set(ex_owners) if ss_owners[k] != ex_owners[k]}
        rows = [r.split(",") for r in open(os.path.join(out, "series.csv")).read().split("\n")[1:] if r]
        at_min1 = [r for r in rows if float(r[0]) >= 60.0]
        base = at_min1[0] if at_min1 else None
        durations = poll_durations(os.path.join(out, "exporter.log"), load_started, load_stopped)
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
            "poll_errors": errors,
            "scrapes": scrapes, "scrape_connections": scraper.connects,
            "scrapes_with_unattributed": unknown_scrapes,
            "wrong_names": wrong, "wrong_examples": wrong_examples,
            "settled": {"states_ss": {f"{k[0]}/{k[1]}": v for k, v in sorted(ss_states.items())},
                        "owners_ss": {f"{k[0] or '-'}/{'listen' if k[1] else 'other'}": v
                                      for k, v in sorted(ss_owners.items())},
                        "state_diff_ss_vs_exporter": state_diff,
                        "owner_diff_ss_vs_exporter": owner_diff,
                        "attempts": settled["attempts"],
                        "waited_after_stop_s": round(time.monotonic() - settle_start, 1)},
        }
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1))
        failures = []
        if not load["connections"] or not churn["processes"] or not churn["pid_reused"]:
            failures.append(f"the load did not run: {load['connections']} connections, "
                            f"{churn['processes']} processes, {churn['pid_reused']} pids reused")
        if errors:
            failures.append(f"poll errors: {errors}")
        if wrong:
            failures.append(f"{wrong} wrong owner names, e.g. {wrong_examples}")
        if state_diff:
            failures.append(f"counts per state differ from ss (ss, exporter): {state_diff}")
        if owner_diff:
            failures.append(f"counts per process differ from ss (ss, exporter): {owner_diff}")
        if args["targets"] and base:
            for key, col in (("rss_kib", 1), ("fds", 2)):
                b = int(base[col])
                worst = max(int(r[col]) for r in at_min1)
                if worst > b * 1.1:
                    failures.append(f"{key} grew past 10% of minute 1: {b} -> max {worst}")
        for f in failures:
            print(f"FAIL: {f}")
        return 1 if failures else 0
    finally:
        for name in ("churn", "load", "exporter"):
            if name in procs:
                stop_pid(procs[name])
        exlog.close()


def selftest():
    """The checks of this file can fail: a wrong name, a miscount and ss parsing."""
    text = '''# TYPE sockdiag_tcp_port_sockets gauge
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7001",process="churn_a",state="established"} 3
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7002",process="churn_a",state="close_wait"} 1
sockdiag_tcp_port_sockets{netns="host",direction="outbound",port="7002",process="unknown",state="established"} 2
sockdiag_tcp_port_sockets{netns="host",direction="inbound",port="7002",process="churn_b",state="established"} 0
sockdiag_tcp_port_sockets{netns="host",direction="inbound",port="8001",process="",state="time_wait"} 9
sockdiag_tcp_listen_queue_length{netns="host",address="127.0.0.1",port="9900",process="soak_load"} 0
sockdiag_tcp_sockets{netns="host",family="ipv4",state="established"} 5
sockdiag_tcp_sockets{netns="host",family="ipv4",state="close_wait"} 1
'''
    m = parse(text)
    wrong = wrong_names(m)
    assert [(w["port"], w["process"]) for w in wrong] == [("7002", "churn_a"), ("9900", "soak_load")], wrong
    states, owners = exporter_counts(m)
    assert states == {("ipv4", "established"): 5, ("ipv4", "close_wait"): 1}, states
    assert owners == {("churn_a", False): 4, ("unknown", False): 2, ("", False): 9,
                      ("soak_load", True): 1}, owners
    line = 'ESTAB 0 0 [::1]:8004 [::1]:40000 users:(("soak_load",pid=7,fd=3),("x",pid=9,fd=4))'
    assert USERS.search(line).group(1) == "soak_load"
    print("soak.py selftest: ok")


def main():
    mode = sys.argv[1]
    if mode == "selftest":
        selftest()
    elif mode == "load":
        load_main(float(sys.argv[2]), sys.argv[3])
    elif mode == "churn":
        churn_main(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif mode == "run":
        a = sys.argv[2:]
        args = {"binary": a[0], "out": a[1], "duration": float(a[2]), "rate": float(a[3]),
                "procs": float(a[4]), "poll": int(a[5]), "sample": float(a[6]),
                "targets": a[7] == "1", "reuse": a[8], "malloc_stats": a[9] == "1"}
        sys.exit(run_main(args))


if __name__ == "__main__":
    main()
