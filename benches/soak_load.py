#!/usr/bin/env python3
"""The load of the churn soak (benches/soak.sh, benches/soak.py): the connection churn
(`soak.py load`, comm soak_load) and the process churn (`soak.py churn`, comm soak_churn).
Both run inside the soak's namespaces, started and stopped by soak.py: SIGUSR1 stops the
churn and leaves the final set held, SIGTERM ends them."""

import collections
import ctypes
import errno
import json
import os
import resource
import signal
import socket
import struct
import time

WEB_PORT = 9900
CHURN_PORT = {"churn_a": 7001, "churn_b": 7002}
LOAD_PORTS = (8001, 8002, 8003, 8004, 8005)
# Held sockets (--held, and the steady phase's): ESTABLISHED pairs to 127.0.1.K:HOLD_PORT,
# both ends held by holder K (comm soak_hold). One port, so that the held sockets fold into
# a single port series however many holders there are.
HOLD_PORT = 8100
# The steady phase's TIME_WAIT: clients of 127.3.N.1 to 127.0.2.1:TW_PORT (no owner).
TW_PORT = 8101
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


def set_comm(name):
    LIBC.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)




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


# ---------------------------------------------------------------- held (soak_hold)

def hold_pairs_per_process():
    """ESTABLISHED pairs one holder can keep (two fds each) under the hard fd limit, which
    a process here may not raise: the held sockets are spread over processes."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return max(1, min(20000, hard - 64) // 2)


def hold_main(index, pairs, ready_path):
    """Holder `index`: listens on 127.0.1.(index+1):HOLD_PORT, opens `pairs` connections to
    itself, keeps both ends until SIGTERM, and writes `ready_path` once all are held."""
    set_comm("soak_hold")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    address = f"127.0.1.{index + 1}"
    lst = listener(address, HOLD_PORT)
    held = []
    for _ in range(pairs):
        c = socket.create_connection((address, HOLD_PORT))
        held += [c, lst.accept()[0]]
    with open(ready_path, "w") as f:
        f.write(str(len(held)))
    while True:
        signal.pause()


def time_wait_main(count, ready_path):
    """Makes `count` TIME_WAIT sockets at once (the steady phase's share of the churn
    phase's state mix), then waits for SIGTERM. Client i binds an explicit source of its
    own (127.3.N.1, port 10000 + i mod 50000: an automatic port would be searched for past
    every TIME_WAIT, quadratic), so no 4-tuple is recycled; the client closes first and
    keeps the TIME_WAIT."""
    set_comm("soak_tw")
    lst = listener("127.0.2.1", TW_PORT)
    made = 0
    while made < count:
        batch = []
        for i in range(made, min(made + 128, count)):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind((f"127.3.{i // 50000}.1", 10000 + i % 50000))
            c.connect(("127.0.2.1", TW_PORT))
            batch.append(c)
        servers = [lst.accept()[0] for _ in batch]
        for c in batch:
            c.close()
        for s in servers:
            s.close()
        made += len(batch)
    with open(ready_path, "w") as f:
        f.write(str(made))
    while True:
        signal.pause()


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
