"""Where one batch of encrypted scoring spends its CPU, step by step, in process.

Runs on its own: ``python benchmarks/profile_he.py [--rows 65536] [--warm 3]``. Builds
``bench_he``'s domain, files its model through a gateway process, then runs batches of
8,192 subjects new to the ledgers through ``Gateway.handle`` in this process (as a
worker would, after ``gc.freeze()``) and prints, per step, the median ``time.thread_time``
over the batches after the first ``--warm``. Nested steps are indented; a step's time
includes its nested ones. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import bench_he
from dataauth.api.render import json_response
from dataauth.app import build_gateway
from dataauth.config import Settings
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.base import Call
from dataauth.operations.encrypted import ScoreRequest
from dataauth.sdk.he import HEClient, LinearModel, make_context
from dataauth.store import statements
from harness import free_port, wait_ready

BATCH = 8192
times: dict[str, float] = {}


def timed(obj: Any, name: str, label: str) -> None:
    """Replace ``obj.name`` by a wrapper adding its thread CPU time to ``times[label]``."""
    inner = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.thread_time() - started

    setattr(obj, name, wrapper)


@contextmanager
def timed_commit(self: statements.WriteLock, connection: Any) -> Iterator[Any]:
    """``WriteLock.transaction`` with its commit timed apart, per table."""
    with self.held():
        cursor = connection.cursor()
        cursor.execute(self.begin)
        try:
            yield cursor
            started = time.thread_time()
            connection.commit()
            label = f"    commit {self.table}"
            times[label] = times.get(label, 0.0) + time.thread_time() - started
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()


def filed(data_dir: Path, model: LinearModel, secret: Any) -> tuple[str, str, str]:
    """Register the context and file the model through a gateway process: ids, token."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "serve", "--development-issuers", "--port",
         str(port), "--data-dir", str(data_dir), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(port, server)
        keyring = Keyring(data_dir / "keys")
        token = issue_token(
            keyring, subject=bench_he.OPERATOR, issuer="dataauth-dev", audience="dataauth"
        )
        with HEClient(f"http://127.0.0.1:{port}", token) as gateway:
            context_id = gateway.register_context(secret)
            model_id = gateway.register_model(bench_he.PRODUCT, context_id, model, secret)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return context_id, model_id, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=65536, help="subjects in the domain")
    parser.add_argument("--warm", type=int, default=3, help="batches run before counting")
    args = parser.parse_args()

    rng = np.random.default_rng(20261126)
    data_dir = Path(tempfile.mkdtemp(prefix="profile-he-")) / "data"
    bench_he.build_domain(data_dir, args.rows, rng)
    features = len(bench_he.FEATURES)
    model = LinearModel(bench_he.FEATURES, list(rng.uniform(-0.01, 0.01, features)), 1.0)
    context_id, model_id, token = filed(data_dir, model, make_context())

    gateway, _, _ = build_gateway(Settings(data_dir=data_dir, development_issuers=True))
    kind, usage, ledger = gateway.kinds["he-score"], gateway.usage, gateway.disclosures
    statements.WriteLock.transaction = timed_commit  # type: ignore[method-assign]
    for obj, name, label in [
        (gateway, "handle", "handle"),
        (kind, "describe", "  describe"),
        (kind.hasher, "many", "    keyed hashes (both)"),
        (kind.hasher, "people", "      keyed hashes (people)"),
        (gateway, "decide", "  decide"),
        (gateway, "admit", "  admit"),
        (usage, "charges", "    usage: counters made"),
        (usage, "charge", "    usage: charged"),
        (usage._upsert, "insert", "      usage: upsert statements"),
        (kind, "disclosures", "    disclosures made"),
        (ledger, "charge", "    disclosure: charged"),
        (ledger, "_held", "      disclosure: rows held read"),
        (ledger, "_price", "      disclosure: priced"),
        (ledger._upsert, "insert", "      disclosure: upsert statements"),
        (ledger, "_remember", "      disclosure: remembered"),
        (kind, "execute", "  execute"),
        (kind, "_features", "    feature rows read"),
        (kind, "_combine", "    multiplies (arithmetic)"),
        (kind, "_release", "    noise encrypted, serialised (arithmetic)"),
        (kind, "disclose", "  disclose (base64)"),
        (gateway, "record", "  audit entry"),
    ]:
        timed(obj, name, label)
    gc.freeze()  # as a worker does at start (app.py)

    keys = [f"S{i:08d}" for i in range(args.rows)]
    runs = []
    for start in range(0, args.rows - BATCH + 1, BATCH):
        raw = bench_he.body(context_id, model_id, keys[start : start + BATCH])
        times.clear()
        started = time.thread_time()
        body = ScoreRequest.model_validate_json(raw)
        times["body parsed"] = time.thread_time() - started
        result = gateway.handle(f"Bearer {token}", "he-score", Call("he-score", body, raw))
        json_response(result)
        times["total"] = time.thread_time() - started
        runs.append(dict(times))
    counted = runs[args.warm :] or runs
    medians = {k: round(statistics.median(r.get(k, 0.0) for r in counted) * 1000, 1)
               for k in counted[0]}  # fmt: skip
    for label, ms in medians.items():
        print(f"{label:48s} {ms:7.1f} ms")
    print(json.dumps({"profile": "he", "batch": BATCH, "batches": len(counted), "ms": medians}))


if __name__ == "__main__":
    main()
