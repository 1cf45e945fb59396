"""How fast the command line starts, beside a bare interpreter's start in the same run.

Runs on its own: ``python benchmarks/bench_cli.py [--runs 15]``. Times, as the median of
``--runs`` fresh processes each: ``python -c pass`` (the baseline), ``dataauth --help``,
``dataauth serve --help`` and ``dataauth token`` against a data directory made for the
run (keys and an empty gateway database, as ``serve`` leaves them). With ``--serve``,
also how long ``dataauth serve --demo`` takes to answer ``/healthz``: on a first start
(the demo domain generated) and on a second (reused). Prints one JSON object as its
last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dataauth.identity.keys import Keyring
from dataauth.store.engine import gateway_engine
from harness import free_port, wait_ready

TARGETS = {"help_seconds_max": 0.3, "token_seconds_max": 0.3, "second_start_seconds_max": 10}
"""Issue 13: ``dataauth --help`` and ``dataauth token`` under 0.3 s; a second
``serve --demo`` healthy in under 10 s."""


def healthy_after(command: list[str], env: dict[str, str], port: int) -> float:
    """Seconds from starting ``command`` until it answers ``/healthz``; then stop it."""
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(port, server)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)


def median_seconds(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--serve", action="store_true", help="time serve --demo starts too")
    args = parser.parse_args()
    python = sys.executable
    cli = [python, "-m", "dataauth.cli"]
    with tempfile.TemporaryDirectory() as where:
        data = Path(where) / "data"
        keyring = Keyring(data / "keys")
        keyring.dev_issuer_key()
        keyring.subject_hasher()
        gateway_engine(f"sqlite:///{data / 'gateway.sqlite'}").dispose()
        env = {**os.environ, "DATAAUTH_DATA_DIR": str(data)}
        bare = median_seconds([python, "-c", "pass"], env, args.runs)
        timed = {
            "help": median_seconds([*cli, "--help"], env, args.runs),
            "serve_help": median_seconds([*cli, "serve", "--help"], env, args.runs),
            "token": median_seconds([*cli, "token", "--operator", "demo-bank"], env, args.runs),
        }
        if args.serve:
            port = free_port()
            serve = [*cli, "serve", "--demo", "--port", str(port), "--data-dir", where + "/demo"]
            timed["first_start"] = healthy_after(serve, env, port)
            timed["second_start"] = healthy_after(serve, env, port)
    metrics: dict[str, float] = {}
    for name, seconds in timed.items():
        metrics[f"{name}_seconds"] = round(seconds, 4)
        metrics[f"{name}_starts_per_second"] = round(1 / seconds, 2)
        metrics[f"{name}_ratio_to_bare"] = round(seconds / bare, 1)
    print(json.dumps({
        "benchmark": "cli",
        "metrics": metrics,
        "baseline": {"bare_interpreter_seconds": round(bare, 4), "runs": args.runs},
        "targets": TARGETS,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
