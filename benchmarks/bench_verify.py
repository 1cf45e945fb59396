"""Verification throughput through the whole spine, beside a bare FastAPI endpoint.

Runs on its own: ``python benchmarks/bench_verify.py [--seconds 5] [--workers 2]``.
Starts a demo gateway and a bare app (parses the same body model, returns a constant),
each with the same number of uvicorn worker processes (one per core by default), drives
each with the same keep-alive clients in separate processes over loopback, and prints
one JSON object as its last line. The batch's baseline is the same keys and threshold
asked of the demo's domain database directly with sqlite3, one statement a batch, in as
many processes as the gateway has workers. ``DATAAUTH_SQLITE_SYNCHRONOUS=NORMAL`` measures the
gateway with crash-safe rather than power-loss-safe audit commits.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.verify import VerifyRequest
from harness import cpu_split, drive, free_port, process_cpu, wait_ready

THRESHOLD = 5000
TARGETS = {
    "single_ratio_min": 0.5,
    "batch_subject_checks_per_second_min": 100_000,
    "batch_ratio_to_direct_min": 0.5,
}


def bare_app() -> FastAPI:
    """The baseline: FastAPI parsing the same body model into the same type, no spine."""
    app = FastAPI()

    @app.post("/v1/verify/{product}")
    def verify(product: str, body: VerifyRequest) -> Response:
        return Response(b'{"results":[{"index":0,"result":true}]}', media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def load(port: int, path: str, body: bytes, headers: dict, seconds: float, clients: int) -> dict:
    run = drive(port, path, [[body]] * clients, headers, seconds)
    return {**run, "per_second": run["requests"] / run["seconds"]}


def direct_client(db: Path, keys: list[str], threshold: int, seconds: float, out) -> None:
    """The batch's own question asked of the domain database directly, one statement a
    batch (every key and the threshold bound), for ``seconds``; put the batches done."""
    marks = ",".join("?" * len(keys))
    sql = f"SELECT resident_id, monthly_income >= ? FROM residents WHERE resident_id IN ({marks})"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        done, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.execute(sql, (threshold, *keys)).fetchall()
            done += 1
    out.put(done)


def direct(db: Path, keys: list[str], threshold: int, seconds: float, processes: int) -> float:
    """Subject checks per second looked up directly, in as many processes as workers."""
    queue: mp.Queue = mp.Queue()
    args = (db, keys, threshold, seconds, queue)
    procs = [mp.Process(target=direct_client, args=args) for _ in range(processes)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    batches = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return batches * len(keys) / (time.perf_counter() - started)


def demo_requests(data_dir: Path, batch: int) -> tuple[dict[str, str], bytes, bytes, list[str]]:
    """Headers with a demo-bank token, a one-subject identity match, and a batch of
    income checks over the first ``batch`` residents (and their keys)."""
    token = issue_token(
        Keyring(data_dir / "keys"),
        subject="demo-bank",
        issuer="dataauth-dev",
        audience="dataauth",
        ttl_seconds=3600,
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with sqlite3.connect(data_dir / "demo-domain.sqlite") as db:
        rows = db.execute("SELECT resident_id, name FROM residents LIMIT ?", (batch,)).fetchall()
    key, name = rows[0]
    single = {"purpose": "credit", "subjects": [{"key": key, "claims": {"name": name}}]}
    checks = [{"key": k, "claims": {"threshold": THRESHOLD}} for k, _ in rows]
    many = {"purpose": "credit", "subjects": checks}
    return headers, json.dumps(single).encode(), json.dumps(many).encode(), [k for k, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=None, help="default: 3 per worker")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes, each side"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a demo data dir")
    args = parser.parse_args()
    args.clients = args.clients or 3 * args.workers

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-verify-")) / "data"
    gw_port, bare_port = free_port(), free_port()
    env = {**os.environ, "DATAAUTH_CATALOG_TTL_SECONDS": "2"}
    workers = ["--workers", str(args.workers)]
    gateway_cmd = ["-m", "dataauth.cli", "serve", "--demo", "--port", str(gw_port)]
    bare_cmd = ["-m", "uvicorn", "--factory", "bench_verify:bare_app", "--port", str(bare_port)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    servers = [
        subprocess.Popen(
            [sys.executable, *gateway_cmd, "--data-dir", str(data_dir), *workers], env=env, **quiet
        ),
        subprocess.Popen(
            [sys.executable, *bare_cmd, "--log-level", "warning", *workers],
            cwd=Path(__file__).parent,
            **quiet,
        ),
    ]
    try:
        wait_ready(gw_port, servers[0])
        wait_ready(bare_port, servers[1])
        headers, single, batch, keys = demo_requests(data_dir, args.batch)
        size = len(keys)

        warm = min(1.0, args.seconds)
        load(gw_port, "/v1/verify/identity-match", single, headers, warm, args.clients)
        load(bare_port, "/v1/verify/identity-match", single, headers, warm, args.clients)
        # each side's CPU, per worker, read from /proc around its run: how it split
        spread = {}
        runs = []
        for name, port, server in (
            ("gateway", gw_port, servers[0]),
            ("bare", bare_port, servers[1]),
        ):
            before = process_cpu(server.pid)
            run = load(
                port, "/v1/verify/identity-match", single, headers, args.seconds, args.clients
            )
            spread[name] = cpu_split(before, process_cpu(server.pid), server.pid, run["requests"])
            runs.append(run)
        spine, bare = runs
        batches = load(
            gw_port, "/v1/verify/income-at-least", batch, headers, args.seconds, args.clients
        )
        # the servers stay up, idle, so the direct look-ups share the machine as the
        # gateway's did
        looked_up = direct(
            data_dir / "demo-domain.sqlite", keys, THRESHOLD, args.seconds, args.workers
        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)

    ratio = spine["per_second"] / bare["per_second"]
    checks = batches["per_second"] * size
    print(
        json.dumps(
            {
                "benchmark": "verify",
                "metrics": {
                    "single_requests_per_second": round(spine["per_second"], 1),
                    "single_ratio_to_bare": round(ratio, 3),
                    "batch_size": size,
                    "batch_requests_per_second": round(batches["per_second"], 2),
                    "batch_subject_checks_per_second": round(checks),
                    "batch_ratio_to_direct": round(checks / looked_up, 3),
                    "errors": spine["errors"] + batches["errors"],
                },
                "baseline": {
                    "bare_fastapi_requests_per_second": round(bare["per_second"], 1),
                    "batch_direct_lookup_checks_per_second": round(looked_up),
                },
                "single_cpu_split": spread,
                "targets": TARGETS,
                "setup": {
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "workers": args.workers,
                    "cores": os.cpu_count(),
                    "sqlite_synchronous": os.environ.get("DATAAUTH_SQLITE_SYNCHRONOUS", "FULL"),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
