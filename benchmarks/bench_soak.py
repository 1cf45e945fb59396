"""A soak: does a gateway under steady mixed traffic hold its memory flat?

Runs on its own: ``python benchmarks/bench_soak.py [--minutes 4] [--workers 2]``.
Starts the demo gateway with ``--workers`` worker processes, drives it for ``--minutes``
from ``--clients`` keep-alive clients in processes of their own with a mix of
single-subject and batch verifications over many residents, aggregate queries and
malformed requests, and samples the workers' resident memory as it goes. Then it stops
the gateway, exports its audit log and verifies it offline, and prints one JSON object
as its last line: RSS at the start of the traffic and at its end, the slope over the
second half (MiB a minute, per worker: flat memory is a slope near 0) and the growth it
amounts to over that half as a fraction of the RSS the half started from (flat within 5%
is at most 0.05), tree heads per entry, and the count of 5xx answers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from harness import free_port, wait_ready

TARGETS = {
    "rss_slope_mib_per_minute_max": 1.0,
    "rss_growth_second_half_fraction_max": 0.05,
    "server_errors_max": 0,
}
QUERIES = [
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
    "SELECT district, AVG(monthly_income) AS income FROM residents GROUP BY district",
]


def requests(data_dir: Path, client: int, residents: int, batch: int) -> list[tuple[str, bytes]]:
    """One client's round of requests: mostly singles over its own residents, then a
    batch, a query and two malformed bodies."""
    with sqlite3.connect(data_dir / "demo-domain.sqlite") as db:
        rows = db.execute(
            "SELECT resident_id, name FROM residents LIMIT ? OFFSET ?",
            (residents, client * residents),
        ).fetchall()
    mix: list[tuple[str, bytes]] = []
    for n, (key, name) in enumerate(rows):
        body = {"purpose": "credit", "subjects": [{"key": key, "claims": {"name": name}}]}
        mix.append(("/v1/verify/identity-match", json.dumps(body).encode()))
        if n % 10 == 9:
            many = [{"key": k, "claims": {"threshold": 3000 + n}} for k, _ in rows[:batch]]
            body = {"purpose": "credit", "subjects": many}
            mix.append(("/v1/verify/income-at-least", json.dumps(body).encode()))
            sql = QUERIES[(n // 10) % len(QUERIES)]
            mix.append(("/v1/query", json.dumps({"purpose": "credit", "sql": sql}).encode()))
            mix.append(("/v1/verify/identity-match", b'{"purpose": "credit", "subjects": ['))
            mix.append(("/v1/verify/identity-match", b'{"purpose": 7, "subjects": "x"}'))
    return mix


def client(port: int, mix: list[tuple[str, bytes]], headers: dict, seconds: float, out) -> None:
    """Send ``mix`` round and round for ``seconds``; put {status class: count}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    counts: dict[str, int] = {}
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        path, body = mix[n % len(mix)]
        n += 1
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = f"{response.status // 100}xx"
        except (OSError, http.client.HTTPException):
            status = "failed"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        counts[status] = counts.get(status, 0) + 1
    out.put(counts)


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes under ``pid`` (started by multiprocessing's spawn)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(int(child))
    return sorted(found)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MiB) points."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--residents", type=int, default=2000, help="per client")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a demo data dir")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-soak-")) / "data"
    port = free_port()
    env = {**os.environ, "DATAAUTH_CATALOG_TTL_SECONDS": "2"}
    command = [sys.executable, "-m", "dataauth.cli", "serve", "--demo", "--port", str(port),
               "--data-dir", str(data_dir), "--workers", str(args.workers)]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen(command, env=env, **quiet)
    seconds = args.minutes * 60
    try:
        wait_ready(port, server)
        token = issue_token(
            Keyring(data_dir / "keys"),
            subject="demo-bank",
            issuer="dataauth-dev",
            audience="dataauth",
            ttl_seconds=int(3600 + 2 * seconds),
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        workers = workers_of(server.pid)
        if len(workers) != args.workers:
            raise SystemExit(f"found {len(workers)} worker processes, not {args.workers}")
        queue: mp.Queue = mp.Queue()
        clients = [
            mp.Process(target=client, args=(port, requests(data_dir, i, args.residents,
                                                           args.batch), headers, seconds, queue))
            for i in range(args.clients)
        ]  # fmt: skip
        started = time.perf_counter()
        for process in clients:
            process.start()
        samples: list[tuple[float, list[float]]] = []
        every = seconds / args.samples
        while True:
            elapsed = time.perf_counter() - started
            samples.append((elapsed / 60, [rss_mib(pid) for pid in workers]))
            if elapsed >= seconds:
                break
            time.sleep(min(every, max(0.0, seconds - elapsed)))
        counts: dict[str, int] = {}
        for _ in clients:
            for status, n in queue.get().items():
                counts[status] = counts.get(status, 0) + n
        for process in clients:
            process.join()
    finally:
        server.terminate()
        server.wait(timeout=30)

    export = data_dir.parent / "export"
    cli = [sys.executable, "-m", "dataauth.cli", "audit"]
    exported = subprocess.run([*cli, "export", str(export), "--data-dir", str(data_dir)],
                              capture_output=True, text=True)  # fmt: skip
    verified = subprocess.run([*cli, "verify", str(export)], capture_output=True, text=True)
    entries = heads = 0
    if exported.returncode == 0:
        with (export / "entries.jsonl").open("rb") as lines:
            entries = sum(1 for _ in lines)
        heads = len(json.loads((export / "heads.json").read_text()))

    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    per_worker = [slope([(t, rss[w]) for t, rss in half]) for w in range(len(workers))]
    # Growth over the second half as a fraction of the RSS it started from, read off the
    # fitted line rather than two samples so one garbage-collection spike does not decide it.
    span = half[-1][0] - half[0][0]
    growth = [per_worker[w] * span / half[0][1][w] for w in range(len(workers))]
    answered = sum(counts.values())
    server_errors = counts.get("5xx", 0) + counts.get("failed", 0)
    print(
        json.dumps(
            {
                "benchmark": "soak",
                "metrics": {
                    "requests_per_second": round(answered / seconds, 1),
                    "rss_mib_start": [round(v, 1) for v in samples[0][1]],
                    "rss_mib_end": [round(v, 1) for v in samples[-1][1]],
                    "rss_slope_second_half_mib_per_minute": [round(v, 3) for v in per_worker],
                    "rss_growth_second_half_fraction": [round(v, 4) for v in growth],
                    "audit_entries": entries,
                    "tree_heads": heads,
                    "tree_heads_per_entry": round(heads / entries, 4) if entries else None,
                    "answers": counts,
                    "server_errors": server_errors,
                    "errors": server_errors,
                    "log_verifies": exported.returncode == 0 and verified.returncode == 0,
                },
                "baseline": {"rss_mib_start": [round(v, 1) for v in samples[0][1]]},
                "targets": TARGETS,
                "setup": {
                    "minutes": args.minutes,
                    "workers": args.workers,
                    "clients": args.clients,
                    "cores": os.cpu_count(),
                    "head_delay_ms": float(os.environ.get("DATAAUTH_HEAD_DELAY_MS", 100)),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
