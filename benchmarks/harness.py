"""What the benchmarks that start a gateway share: a free port, waiting for it, and
keep-alive clients in processes of their own driving it over loopback."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 600) -> None:
    """Until ``/healthz`` on ``port`` answers 200; exit if the server dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited early with code {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("a server did not become ready")


def client(port: int, path: str, bodies: list[bytes], headers: dict, seconds: float, out) -> None:
    """POST ``bodies`` in turn on one keep-alive connection for ``seconds``; put (200s, others)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    done, errors, n = 0, 0, 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("POST", path, body=bodies[n % len(bodies)], headers=headers)
        n += 1
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            done += 1
        else:
            errors += 1
    out.put((done, errors))


def drive(port: int, path: str, bodies: list[list[bytes]], headers: dict, seconds: float) -> dict:
    """One client process per list of bodies, all at once; requests, errors, seconds."""
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=client, args=(port, path, own, headers, seconds, queue)) for own in bodies
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return {
        "requests": sum(r[0] for r in results),
        "errors": sum(r[1] for r in results),
        "seconds": time.perf_counter() - started,
    }


def process_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of a server ``pid`` and of each of its worker
    processes, by pid, from /proc: how a load split across the workers. Empty off Linux."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                pids += [int(c) for c in children.read().split()]
    except OSError:
        return {}
    used = {}
    for each in pids:
        try:
            with open(f"/proc/{each}/cmdline", "rb") as cmdline:
                if b"resource_tracker" in cmdline.read():
                    continue  # multiprocessing's, not a worker
            with open(f"/proc/{each}/stat") as stat:
                # after the command's name in parentheses: utime, stime are fields 14, 15
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[each] = (int(fields[11]) + int(fields[12])) / tick
    return used


def cpu_split(
    before: dict[int, float], after: dict[int, float], server: int, requests: int
) -> dict:
    """Of the CPU used between two ``process_cpu`` readings: each worker's share (largest
    first; the server process itself when it has no workers), and milliseconds of the
    whole (server and workers) per request."""
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    workers = {pid: used for pid, used in spent.items() if pid != server} or spent
    whole = sum(workers.values())
    shares = sorted((used / whole if whole else 0.0 for used in workers.values()), reverse=True)
    return {
        "worker_shares": [round(share, 3) for share in shares],
        "cpu_ms_per_request": round(1000 * sum(spent.values()) / max(requests, 1), 3),
    }
