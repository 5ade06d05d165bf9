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


def start(*args, nofile=None, env=None):
    cmd = [BIN, "--web.listen-address=127.0.0.1:10120", "--poll.interval=1s", "--log.level=warn", *args]
    if nofile:
        cmd = ["prlimit", f"--nofile={nofile}:{nofile}", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or {})
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(ADDR, timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    # The first poll scans every process's fds: seconds on a host with a million of them.
    deadline = time.time() + 120
    while time.time() < deadline and value(scrape()[2], "sockdiag_last_poll_success_timestamp_seconds") is None:
        time.sleep(0.2)
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


def issue16_cases(rows):

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


CLOSED = 'sockdiag_http_connections_closed_total{reason="%s"}'


def listen_overflows():
    """TcpExt ListenOverflows of this network namespace: SYNs dropped on a full backlog."""
    with open("/proc/net/netstat") as f:
        lines = [l.split() for l in f if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenOverflows"])


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# ---- Issue 17: overload -------------------------------------------------------------------

# Malformed requests, each on a fresh connection: the exporter must answer or close.
MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "binary garbage": b"\x16\x03\x01\x00\xff\xfe\x00\x01\r\n\r\n",
    "unknown method": b"FROB /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "method with NUL": b"GE\x00T /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "CONNECT": b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
    "Content-Length overflow": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "Content-Length 1 TB, no body": b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n",
    "Content-Length negative": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "two Content-Lengths": b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "chunked: bad size": b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    "chunked: size overflow": b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nxx\r\n",
    "chunked and Content-Length": b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding: gzip only": b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "NUL in path": b"GET /met\x00rics HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in header value": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "non-UTF-8 path": b"GET /\xff\xfe\xc0\xaf HTTP/1.1\r\nHost: x\r\n\r\n",
    "non-UTF-8 escaped path": b"GET /%ff%fe%c0%af HTTP/1.1\r\nHost: x\r\n\r\n",
    "non-UTF-8 header value": b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: \xff\xfe\r\n\r\n",
    "header without colon": b"GET /metrics HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "obsolete line folding": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "HTTP/0.9 request": b"GET /metrics\r\n\r\n",
    "HTTP/9.9": b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
    "absolute-form URI": b"GET http://evil.example/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "100 KB URI": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "1,000 headers": b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n",
    "Expect: 100-continue, no body": b"POST /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
    "bare LF line endings": b"GET /metrics HTTP/1.1\nHost: x\n\n",
    "HTTP/2 prior knowledge": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
}


async def _read_status(reader, timeout):
    """The status line's code, 'closed' on EOF or reset, 'hung' on timeout."""
    import asyncio
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        return "hung"
    except OSError:
        return "reset"
    if not line:
        return "closed"
    parts = line.split(b" ", 2)
    return parts[1].decode(errors="replace") if len(parts) > 1 else repr(line[:20])


def load_process(kind, count, seconds, out):
    """A process driving `count` asyncio clients of `kind` for `seconds`; puts its tally."""
    import asyncio
    from collections import Counter

    tally = Counter()
    outcomes = {}

    async def scraper(stop_at):
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection(*ADDR)
                while time.monotonic() < stop_at:
                    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
                    await reader.readexactly(length)
                    tally[int(head.split(b" ", 2)[1])] += 1
                writer.close()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, AttributeError):
                tally["reconnect"] += 1
                await asyncio.sleep(0.01)

    async def slowloris(stop_at):
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection(*ADDR)
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                tally["opened"] += 1
                while time.monotonic() < stop_at:
                    await asyncio.sleep(1)
                    if reader.at_eof():
                        raise ConnectionResetError
                    writer.write(b"X")
                    await writer.drain()
                writer.close()
            except OSError:
                tally["closed by server"] += 1

    async def big_header(stop_at):
        header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection(*ADDR)
                writer.write(header)
                tally[await _read_status(reader, 15)] += 1
                writer.close()
            except OSError:
                tally["reset"] += 1
            await asyncio.sleep(0.05)

    async def malformed(name, request, stop_at):
        worst = 0.0
        seen = Counter()
        while time.monotonic() < stop_at:
            began = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection(*ADDR)
                writer.write(request)
                status = await _read_status(reader, 15)
                writer.close()
            except OSError:
                status = "reset"
            seen[status] += 1
            worst = max(worst, time.monotonic() - began)
            await asyncio.sleep(0.2)
        outcomes[name] = (dict(seen), worst)

    async def main():
        stop_at = time.monotonic() + seconds
        if kind == "malformed":
            tasks = [malformed(n, r, stop_at) for n, r in MALFORMED.items()]
        else:
            client = {"scrapers": scraper, "slowloris": slowloris, "big_header": big_header}[kind]
            tasks = [client(stop_at) for _ in range(count)]
        await asyncio.gather(*tasks)

    asyncio.run(main())
    out.put((kind, dict(tally), outcomes))


def probe_process(seconds, every, out):
    """A normal scrape (fresh connection, GET /metrics) every `every` s: (status, s) each."""
    samples = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        status, took, _ = scrape()
        samples.append((status, took))
        time.sleep(every)
    out.put(("probe", samples, None))


def run_load(proc, plan, seconds):
    """Runs `plan` ([(kind, count, processes)]) and a probe for `seconds`, sampling RSS and
    fds of `proc`. Returns (probe samples, tallies by kind, malformed outcomes, peaks)."""
    import multiprocessing as mp
    from collections import Counter

    out = mp.Queue()
    workers = []
    for kind, count, processes in plan:
        for i in range(processes):
            share = count // processes + (1 if i < count % processes else 0)
            workers.append(mp.Process(target=load_process, args=(kind, share, seconds, out)))
    workers.append(mp.Process(target=probe_process, args=(seconds, 0.05, out)))
    for w in workers:
        w.start()
    peak_rss, peak_fds = 0, 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        peak_rss = max(peak_rss, rss_kib(proc))
        peak_fds = max(peak_fds, fds(proc.pid))
        time.sleep(0.2)
    tallies, outcomes, samples = {}, {}, []
    for _ in workers:
        kind, tally, more = out.get(timeout=seconds + 60)
        if kind == "probe":
            samples = tally
            continue
        tallies.setdefault(kind, Counter()).update(tally)
        outcomes.update(more or {})
    for w in workers:
        w.join()
    return samples, tallies, outcomes, (peak_rss, peak_fds)


def latency(samples):
    ok = [t for s, t in samples if s == 200]
    failed = len(samples) - len(ok)
    if not ok:
        return f"no 200 among {len(samples)} scrapes"
    slow = sum(1 for t in ok if t > 0.05)
    return (
        f"{len(samples)} scrapes, p50 {percentile(ok, 0.5)*1000:.1f} ms, "
        f"p99 {percentile(ok, 0.99)*1000:.1f} ms, max {max(ok)*1000:.1f} ms, "
        f"{slow} over 50 ms, {failed} not 200"
    )


def overload_cases(rows, seconds=30, max_connections=None):
    env = {"SOCKDIAG_WEB__MAX_CONNECTIONS": str(max_connections)} if max_connections else None
    proc = start(env=env)
    pid = proc.pid
    base_rss, base_fds = rss_kib(proc), fds(pid)
    idle = probe_process_inline(20)
    overflows = listen_overflows()
    plan = [("scrapers", 500, 2), ("slowloris", 300, 1), ("big_header", 10, 1), ("malformed", 0, 1)]
    samples, tallies, outcomes, (peak_rss, peak_fds) = run_load(proc, plan, seconds)
    # Clients are gone: the exporter sees EOF on each connection at once.
    after_fds = None
    for _ in range(150):
        after_fds = fds(pid)
        if after_fds <= base_fds:
            break
        time.sleep(0.1)
    time.sleep(1)
    after_rss = rss_kib(proc)
    _, _, body = scrape()
    alive = proc.poll() is None
    overflows = listen_overflows() - overflows
    closed = ", ".join(
        f"{reason} {value(body, CLOSED % reason) or 0:.0f}"
        for reason in ("header_timeout", "idle_timeout", "evicted")
    )
    rows.append((
        "Everything at once: scrapers, slowloris, 1 MB headers, malformed requests, HTTP/2"
        + (f" (web.max_connections {max_connections})" if max_connections else ""),
        f"500 looping keep-alive scrapers (2 processes), 300 slowloris, 10 clients sending 1 MB "
        f"headers, {len(MALFORMED)} malformed requests every 0.2 s each; {seconds} s",
        f"normal scrape (fresh connection every 50 ms) idle: {idle}; under load: {latency(samples)}. "
        f"RSS {base_rss/1024:.1f} MiB before, peak {peak_rss/1024:.1f} MiB, {after_rss/1024:.1f} MiB after; "
        f"fds {base_fds} before, peak {peak_fds}, {after_fds} after; "
        f"exporter {'alive' if alive else 'DEAD'}; "
        f"load scrapes {dict(tallies.get('scrapers', {}))}; slowloris {dict(tallies.get('slowloris', {}))}; "
        f"1 MB headers {dict(tallies.get('big_header', {}))}; "
        f"closed: {closed}, "
        f"refused {value(body, 'sockdiag_http_connections_refused_total') or 0:.0f}, "
        f"accept errors {value(body, 'sockdiag_http_accept_errors_total') or 0:.0f}, "
        f"poll errors {poll_errors(body):.0f}; SYNs dropped on a full accept queue {overflows}",
    ))
    for name, (seen, worst) in outcomes.items():
        rows.append((f"Malformed: {name}", "during the load above", f"{seen}, slowest {worst*1000:.0f} ms"))
    stop(proc)


def probe_process_inline(count):
    samples = []
    for _ in range(count):
        status, took, _ = scrape()
        samples.append((status, took))
        time.sleep(0.05)
    return latency(samples)


def scaling_cases(rows, seconds=10):
    """A normal scrape's latency against the number of looping scrapers alone."""
    proc = start()
    for scrapers in (0, 10, 50, 100, 250, 500):
        plan = [("scrapers", scrapers, 2)] if scrapers else []
        samples, tallies, _, _ = run_load(proc, plan, seconds)
        done = sum(v for k, v in tallies.get("scrapers", {}).items() if k == 200)
        rows.append((
            "Normal scrape vs concurrent scrapers",
            f"{scrapers} looping keep-alive scrapers, {seconds} s",
            f"{latency(samples)}; load served {done/seconds:.0f} scrapes/s, "
            f"{dict(tallies.get('scrapers', {}))}",
        ))
    stop(proc)


def read_response(sock, timeout=40):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 else 0
    return status, body.decode(errors="replace")


def signal_cases(rows, stop_seconds=30):
    """SIGSTOP for `stop_seconds`, then SIGCONT, with polls every second."""
    proc = start()
    _, _, body = scrape()
    before = value(body, "sockdiag_last_poll_success_timestamp_seconds")
    early = socket.create_connection(ADDR)  # accepted before the stop, request sent during it
    time.sleep(0.2)
    proc.send_signal(signal.SIGSTOP)
    early.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
    during = socket.create_connection(ADDR)
    during.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
    time.sleep(stop_seconds)
    proc.send_signal(signal.SIGCONT)
    continued = time.time()
    answers = []
    for sock in (early, during):
        status, text = read_response(sock)
        answers.append((status, time.time() - continued, value(text, "sockdiag_last_poll_success_timestamp_seconds")))
    caught_up = None
    while time.time() < continued + 10:
        _, _, body = scrape()
        last = value(body, "sockdiag_last_poll_success_timestamp_seconds")
        if last and last > continued:
            caught_up = time.time() - continued
            break
        time.sleep(0.05)
    time.sleep(2)
    _, _, body = scrape()
    closed = ", ".join(
        f"{reason} {value(body, CLOSED % reason) or 0:.0f}"
        for reason in ("header_timeout", "idle_timeout", "evicted")
    )
    queued = ", ".join(
        f"{status} after {took*1000:.0f} ms showing a last success {continued - (last or 0):.1f} s old"
        for status, took, last in answers
    )
    resumed = f"a poll completed {caught_up*1000:.0f} ms after SIGCONT" if caught_up is not None else "no poll within 10 s"
    rows.append((
        f"SIGSTOP for {stop_seconds} s, then SIGCONT",
        "polls every 1 s; 1 connection accepted before the stop and 1 opened during it, each sending a scrape during the stop",
        f"last poll success {continued - before:.1f} s before SIGCONT; the 2 queued scrapes answered {queued}; {resumed}; "
        f"poll errors {poll_errors(body):.0f}, closed: {closed}, "
        f"accept errors {value(body, 'sockdiag_http_accept_errors_total') or 0:.0f}; "
        f"poll duration {value(body, 'sockdiag_poll_duration_seconds')*1000:.1f} ms",
    ))
    stop(proc)


def nofile_cases(rows):
    """The exporter under a low open-file limit: refused at start, or serving."""
    for nofile in (8, 16, 31, 32, 64):
        cmd = ["prlimit", f"--nofile={nofile}:{nofile}", BIN, "--web.listen-address=127.0.0.1:10120",
               "--poll.interval=500ms", "--log.level=warn"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={})
        try:
            _, err = proc.communicate(timeout=3)
            rows.append((f"RLIMIT_NOFILE {nofile}", "start", f"exit {proc.returncode}: `{err.decode().strip()}`"))
            continue
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + 120
        while time.time() < deadline and value(scrape()[2], "sockdiag_last_poll_success_timestamp_seconds") is None:
            time.sleep(0.2)
        time.sleep(3)
        statuses = [scrape() for _ in range(10)]
        body = statuses[-1][2]
        rows.append((
            f"RLIMIT_NOFILE {nofile}",
            "start, 3 s of polls every 500 ms after the first, 10 scrapes",
            f"serving: scrapes {sorted(set(st for st, _, _ in statuses))}, "
            f"cap {value(body, 'sockdiag_http_connections_max'):.0f}, poll errors {poll_errors(body):.0f}, "
            f"accept errors {value(body, 'sockdiag_http_accept_errors_total'):.0f}",
        ))
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


CASES = {
    "issue16": issue16_cases,
    "overload": overload_cases,
    # The same load under a cap above the number of clients.
    "overload-cap-2048": lambda rows: overload_cases(rows, max_connections=2048),
    "scaling": scaling_cases,
    "signals": signal_cases,
    "nofile": nofile_cases,
}

if __name__ == "__main__":
    chosen = sys.argv[2:] or list(CASES)
    rows = []
    for name in chosen:
        CASES[name](rows)
    print("| Case | Load | Result |")
    print("|---|---|---|")
    for case, load, result in rows:
        print(f"| {case} | {load} | {result} |")
