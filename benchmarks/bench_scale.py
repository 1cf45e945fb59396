"""Verification throughput with two workers on PostgreSQL, beside one worker on SQLite.

Runs on its own: ``python benchmarks/bench_scale.py [--seconds 5] [--postgres-url URL]``.
Starts the demo gateway twice, one after the other, on the same demo domain and keys:
``serve --workers 1`` on its SQLite database (the default deployment: the baseline),
then ``serve --workers N`` on a fresh PostgreSQL database (the scale-out deployment).
Each is driven by the same keep-alive clients in separate processes over loopback, with
single-subject and 1,000-subject verifications, and the run prints one JSON object as
its last line. Without ``--postgres-url`` (a role that may create databases) it starts
the machine's PostgreSQL as the test suite does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench_verify import demo_requests, load
from harness import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"note": "no figure is set; the issue asks for the comparison in one run"}


def postgres_database(admin_url: str | None) -> str:
    """A fresh database on the given server, or on the machine's (started if need be)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres  # the test suite's helper: starts the local cluster, makes a role

    server = postgres.Postgres(admin_url) if admin_url else postgres.connect()
    return server.new_database()


def drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def measure(data_dir: Path, workers: int, env: dict[str, str], args: argparse.Namespace) -> dict:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dataauth.cli",
        "serve",
        "--demo",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
    ]
    server = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, server)
        headers, single, batch, keys = demo_requests(data_dir, args.batch)
        clients = args.clients
        load(port, "/v1/verify/identity-match", single, headers, min(1.0, args.seconds), clients)
        singles = load(port, "/v1/verify/identity-match", single, headers, args.seconds, clients)
        batches = load(port, "/v1/verify/income-at-least", batch, headers, args.seconds, clients)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return {
        "single_requests_per_second": round(singles["per_second"], 1),
        "batch_subject_checks_per_second": round(batches["per_second"] * len(keys)),
        "errors": singles["errors"] + batches["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2, help="workers on PostgreSQL")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres-url", default=os.environ.get("DATAAUTH_TEST_POSTGRES_URL"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    sqlite_dir, pg_dir = root / "sqlite", root / "pg"
    started = time.perf_counter()
    baseline = measure(sqlite_dir, 1, {}, args)
    pg_dir.mkdir()  # the same domain and keys, a database of its own
    shutil.copy(sqlite_dir / "demo-domain.sqlite", pg_dir)
    shutil.copytree(sqlite_dir / "keys", pg_dir / "keys")
    url = postgres_database(args.postgres_url)
    try:
        scaled = measure(pg_dir, args.workers, {"DATAAUTH_DATABASE_URL": url}, args)
    finally:
        drop(url)
        shutil.rmtree(root, ignore_errors=True)
    ratio = scaled["single_requests_per_second"] / baseline["single_requests_per_second"]
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "metrics": {
                    **{f"postgres_{k}": v for k, v in scaled.items() if k != "errors"},
                    "single_ratio_to_sqlite_one_worker": round(ratio, 3),
                    "errors": scaled["errors"] + baseline["errors"],
                },
                "baseline": {f"sqlite_one_worker_{k}": v for k, v in baseline.items()},
                "targets": TARGETS,
                "setup": {
                    "postgres_workers": args.workers,
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "batch": args.batch,
                    "cores": os.cpu_count(),
                    "wall_seconds": round(time.perf_counter() - started, 1),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
