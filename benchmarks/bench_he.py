"""Encrypted scoring: a 16-feature model at degree 8192, through the whole spine.

Runs on its own: ``python benchmarks/bench_he.py [--seconds 5] [--rows 65536]``. Builds a
synthetic domain (one table of 16 integer features, ``feature`` use) and its catalog
entries (a product that needs no consent, an operator licensed for it), starts a
gateway on it, registers a context and a model, then measures over loopback:

- batch throughput: requests of ``--batch`` subjects (17 ciphertexts up, one per 4,096
  subjects down), from one client process per worker, in subjects per second;
- single-subject latency end to end: request naming the filed weights (and, apart, one
  carrying them again, checked against the filing's digest), sent, answered, decrypted;
- in the same run, the same model in plaintext (numpy over the same feature matrix),
  and the encrypted arithmetic alone in process, for the overhead ratios.

Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import tenseal as ts
from sqlmodel import Session

from dataauth.catalog.tables import Dataset, DatasetColumn, Licence, Operator, Product
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.encrypted import OFFSET
from dataauth.sdk.he import HEClient, LinearModel, decrypt_scores, make_context
from dataauth.store.engine import gateway_engine
from harness import drive, free_port, wait_ready

TARGETS = {"batch_subjects_per_second_min": 50_000, "single_latency_ms_p50_max": 50}
FEATURES = [f"f{j:02d}" for j in range(16)]
PRODUCT = "bench-score"
OPERATOR = "bench-bank"


def build_domain(data_dir: Path, rows: int, rng: np.random.Generator) -> np.ndarray:
    """The synthetic department database and its catalog entries; the feature matrix."""
    data_dir.mkdir(parents=True, exist_ok=True)
    values = rng.integers(0, 1000, size=(rows, len(FEATURES)))
    with sqlite3.connect(data_dir / "demo-domain.sqlite") as db:
        columns = ", ".join(f"{f} INTEGER NOT NULL" for f in FEATURES)
        db.execute(f"CREATE TABLE bench_features (subject_id TEXT PRIMARY KEY, {columns})")
        marks = ", ".join("?" * (len(FEATURES) + 1))
        db.executemany(
            f"INSERT INTO bench_features VALUES ({marks})",
            ((f"S{i:08d}", *map(int, row)) for i, row in enumerate(values)),
        )
    engine = gateway_engine(f"sqlite:///{data_dir / 'gateway.sqlite'}")
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Dataset(id="bench", title="bench", department="bench",
                            table_name="bench_features", key_column="subject_id",
                            version="bench-1"))  # fmt: skip
        session.add(Operator(id=OPERATOR, name="bench", kind="bank"))
        session.flush()  # parents before the rows that name them
        session.add(DatasetColumn(dataset_id="bench", name="subject_id", title="key",
                                  type="string", level="L3", uses=["key"]))  # fmt: skip
        for name in FEATURES:
            session.add(DatasetColumn(dataset_id="bench", name=name, title=name, type="integer",
                                      level="L3", uses=["feature", "aggregate"],
                                      bounds=[0, 1000]))  # fmt: skip
        session.add(Product(id=PRODUCT, kind="he-score", title="bench", dataset_id="bench",
                            spec={"features": FEATURES, "consent": False}))  # fmt: skip
        session.add(Licence(id="bench-licence", operator_id=OPERATOR, products=[PRODUCT],
                            purposes=["credit"], valid_from=now - timedelta(days=1),
                            valid_to=now + timedelta(days=365)))  # fmt: skip
        session.commit()
    engine.dispose()
    return values.astype(float)


def body(context_id: str, model_id: str, keys: list[str], weights=None) -> bytes:
    """A score request; with ``weights`` (ciphertexts, bias) sent inline, else the filed ones."""
    sent = {"purpose": "credit", "context": context_id, "model": model_id,
            "subjects": [{"key": k} for k in keys]}  # fmt: skip
    if weights is not None:
        sent["weights"], sent["bias"] = weights
    return json.dumps(sent).encode()


def single_latencies(port, headers, secret, requests: list[bytes]) -> tuple[list[float], int]:
    """Milliseconds per request end to end: sent, answered, decrypted."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies, errors = [], 0
    for sent in requests:
        started = time.perf_counter()
        conn.request("POST", "/v1/he/score", headers=headers, body=sent)
        response = conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            errors += 1
            continue
        decrypt_scores(secret, payload)
        latencies.append((time.perf_counter() - started) * 1000)
    return sorted(latencies), errors


def percentile(values: list[float], q: float) -> float:
    return round(values[int(q * (len(values) - 1))], 2) if values else -1.0


def in_process(model: LinearModel, secret: ts.Context, matrix: np.ndarray) -> dict[str, float]:
    """The encrypted arithmetic alone, as the kind does it per block (no rescale, values
    offset, the bias, a fresh encryption of the noise at the product's scale, the
    serialisation), and plaintext numpy."""
    public = ts.context_from(
        secret.serialize(save_secret_key=False, save_relin_keys=False, save_galois_keys=False)
    )
    public.auto_rescale = False  # as the gateway loads a registered context
    weights, bias = model.encrypted(secret)
    vectors = [ts.ckks_vector_from(public, base64.b64decode(w)) for w in weights]
    bias_vector = ts.ckks_vector_from(public, base64.b64decode(bias))
    slots = 4096
    blocks = max(1, len(matrix) // slots)
    started = time.perf_counter()
    for b in range(blocks):
        block = matrix[b * slots : (b + 1) * slots]
        if len(block) < slots:
            block = np.vstack([block, np.zeros((slots - len(block), block.shape[1]))])
        score = bias_vector * (1.0 + OFFSET)
        for j in range(len(vectors)):
            score += vectors[j] * (block[:, j] + OFFSET).tolist()
        score += ts.ckks_vector(public, [0.0] * slots, 2.0**80)
        score.serialize()
    encrypted = blocks * slots / (time.perf_counter() - started)
    repeats, started = 50, time.perf_counter()
    for _ in range(repeats):
        model.plain_scores(matrix)
    plain = repeats * len(matrix) / (time.perf_counter() - started)
    return {"encrypted": encrypted, "plain": plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=65536, help="subjects in the domain")
    parser.add_argument("--batch", type=int, default=8192, help="subjects per batch request")
    parser.add_argument("--singles", type=int, default=40, help="single-subject requests")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    rng = np.random.default_rng(20261126)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-he-")) / "data"
    matrix = build_domain(data_dir, args.rows, rng)
    model = LinearModel(FEATURES, list(rng.uniform(-0.01, 0.01, len(FEATURES))), 1.0)
    secret = make_context()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "serve", "--development-issuers", "--port",
         str(port), "--data-dir", str(data_dir), "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(port, server)
        keyring = Keyring(data_dir / "keys")
        token = issue_token(keyring, subject=OPERATOR, issuer="dataauth-dev", audience="dataauth")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with HEClient(f"http://127.0.0.1:{port}", token) as gateway:
            context_id = gateway.register_context(secret)
            model_id = gateway.register_model(PRODUCT, context_id, model, secret)
        weights = model.encrypted(secret)
        keys = [f"S{i:08d}" for i in range(args.rows)]
        batch = min(args.batch, args.rows)
        batches = [keys[i : i + batch] for i in range(0, args.rows - batch + 1, batch)]
        bodies = [body(context_id, model_id, b) for b in batches]
        request_bytes = len(bodies[0])

        # correctness inside the run: one batch decrypted against the plaintext model
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("POST", "/v1/he/score", body=bodies[0], headers=headers)
        answer = json.loads(conn.getresponse().read())
        got = np.array(decrypt_scores(secret, answer), dtype=float)
        expected = model.plain_scores(matrix[:batch])
        bound = 1e-6 * (1 + np.abs(matrix[:batch]).sum(axis=1)) + answer["noise"]
        wrong = int(np.sum(np.abs(got - expected) > bound))
        response_bytes = len(json.dumps(answer))

        # every worker warm (context and filed weights loaded, slot questions made) before
        # the clock starts: small batches of keys the domain does not hold (not found)
        spare = [f"W{i:08d}" for i in range(64)]
        warm = [body(context_id, model_id, spare[i : i + 2]) for i in range(0, len(spare), 2)]
        drive(port, "/v1/he/score", [warm] * args.workers, headers, 1.5)
        per_client = [bodies[i :: args.workers] or bodies for i in range(args.workers)]
        run = drive(port, "/v1/he/score", per_client, headers, args.seconds)

        # single subjects, from the end of the table (the batches start at its head)
        ends = [keys[-1 - i] for i in range(2 * args.singles)]
        filed, filed_errors = single_latencies(
            port, headers, secret, [body(context_id, model_id, [k]) for k in ends[::2]]
        )
        inline_keys = ends[1::2][: args.singles // 4 + 1]
        inline, inline_errors = single_latencies(
            port, headers, secret, [body(context_id, model_id, [k], weights) for k in inline_keys]
        )
        run["errors"] += filed_errors + inline_errors
    finally:
        server.terminate()
        server.wait(timeout=30)

    local = in_process(model, secret, matrix)
    subjects_per_second = run["requests"] * batch / run["seconds"]
    print(
        json.dumps(
            {
                "benchmark": "he",
                "metrics": {
                    "batch_subjects_per_second": round(subjects_per_second),
                    "batch_requests": run["requests"],
                    "single_latency_ms_p50": percentile(filed, 0.5),
                    "single_latency_ms_p95": percentile(filed, 0.95),
                    "single_latency_ms_p50_weights_sent_inline": percentile(inline, 0.5),
                    "encrypted_compute_subjects_per_second": round(local["encrypted"]),
                    "end_to_end_over_encrypted_compute": round(
                        subjects_per_second / local["encrypted"], 2
                    ),
                    "overhead_ratio_end_to_end": round(local["plain"] / subjects_per_second, 1),
                    "overhead_ratio_compute": round(local["plain"] / local["encrypted"], 1),
                    "request_bytes_per_batch": request_bytes,
                    "response_bytes_per_batch": response_bytes,
                    "scores_outside_bound": wrong,
                    "errors": run["errors"] + wrong,
                },
                "baseline": {"plaintext_subjects_per_second": round(local["plain"])},
                "targets": TARGETS,
                "setup": {
                    "features": len(FEATURES),
                    "poly_modulus_degree": 8192,
                    "batch": batch,
                    "rows": args.rows,
                    "seconds": args.seconds,
                    "workers": args.workers,
                    "cores": os.cpu_count(),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
