"""Aggregate queries with GROUP BY over a million residents, end to end through the gateway,
beside the same SQL run directly on the domain database in the same run.

Runs on its own: ``python benchmarks/bench_query.py [--rows 1000000] [--repeat 9]``.
Builds a synthetic residents register of ``--rows`` rows with SQLite's own generator (a
few seconds; the demo's Faker generator would take minutes), with the demo's columns,
an index on (district, monthly_income) and ANALYZE. Starts a gateway on it (one worker,
demo catalog and policy) and times, per query, ``--repeat`` requests over HTTP (token,
parse and check, decision, ε charge, rebuilt SQL, noise, audit commit) and the same SQL
text run directly with sqlite3 on the same file. Prints one JSON object as its last line.

The two queries: a count by district (L2 only: exact, k-suppression), and a count and
mean income by district (L3: Laplace noise, so the gateway's statement clamps every
income to the declared bounds, which the direct SQL does not).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine

from dataauth.demo.data import GUANGZHOU_DISTRICTS
from dataauth.demo.domain import metadata
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from harness import free_port, wait_ready

TARGETS = {"gateway_seconds_max": 0.5}
QUERIES = {
    "count_by_district": "SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
    "mean_income_by_district": (
        "SELECT district, COUNT(*) AS n, AVG(monthly_income) AS income "
        "FROM residents GROUP BY district"
    ),
}


def build_domain(path: Path, rows: int, index: bool = True) -> float:
    """A synthetic register of ``rows`` residents, generated inside SQLite; its seconds."""
    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)  # the demo's tables, so the demo catalog describes them
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TEMP TABLE d (k INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO d VALUES (?, ?)", enumerate(GUANGZHOU_DISTRICTS))
        db.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}),
            r AS (SELECT i, abs(random()) % {len(GUANGZHOU_DISTRICTS)} AS k,
                         abs(random()) AS a, abs(random()) AS b FROM n)
            INSERT INTO residents
            SELECT printf('%018d', i), 'r' || i,
                   date('1940-01-01', '+' || (a % 24000) || ' days'), d.name,
                   (a % 12000) + (b % 9000), b % 480, a % 4
            FROM r JOIN d ON d.k = r.k
            """
        )
        if index:  # a covering index: the GROUP BY reads it in order, not the table
            db.execute(
                "CREATE INDEX residents_district_income ON residents (district, monthly_income)"
            )
        db.execute("ANALYZE")
    return time.perf_counter() - started


def timed(run, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-index", action="store_true", help="no (district, income) index")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-query-"))
    domain, data_dir = root / "domain.sqlite", root / "data"
    build_seconds = build_domain(domain, args.rows, not args.no_index)
    port = free_port()
    env = {**os.environ, "DATAAUTH_DOMAIN_URL": f"sqlite:///{domain}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "serve", "--demo", "--port", str(port),
         "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    metrics: dict = {"errors": 0}
    baseline: dict = {}
    try:
        wait_ready(port, server)
        keys = Keyring(data_dir / "keys")
        token = issue_token(
            keys, subject="demo-bank", issuer="dataauth-dev", audience="dataauth", ttl_seconds=3600
        )
        headers = {"Authorization": f"Bearer {token}"}
        direct = sqlite3.connect(f"file:{domain}?mode=ro", uri=True)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for name, sql in QUERIES.items():
                body = {"purpose": "credit", "sql": sql}

                def through_gateway(body: dict = body) -> None:
                    response = client.post("/v1/query", json=body)
                    if response.status_code != 200:
                        metrics["errors"] += 1

                through_gateway()  # warm: caches, the decision memo, the page cache
                direct.execute(sql).fetchall()
                gateway = timed(through_gateway, args.repeat)
                plain = timed(lambda sql=sql: direct.execute(sql).fetchall(), args.repeat)
                metrics[f"{name}_gateway_s"] = gateway["median_s"]
                metrics[f"{name}_gateway_min_s"] = gateway["min_s"]
                metrics[f"{name}_queries_per_second"] = round(1 / gateway["median_s"], 2)
                baseline[f"{name}_direct_sqlite_s"] = plain["median_s"]
                metrics[f"{name}_overhead_s"] = round(gateway["median_s"] - plain["median_s"], 4)
        direct.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        json.dumps(
            {
                "benchmark": "query",
                "metrics": metrics,
                "baseline": baseline,
                "targets": TARGETS,
                "setup": {
                    "rows": args.rows,
                    "index": not args.no_index,
                    "repeat": args.repeat,
                    "domain_build_s": round(build_seconds, 2),
                    "cores": os.cpu_count(),
                    "queries": QUERIES,
                },
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
