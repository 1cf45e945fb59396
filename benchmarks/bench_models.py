"""Model scoring throughput: a 20-feature logistic regression, through the model kind's
path (fetch features by parameterised SQL, run onnxruntime, disclose under the
obligations), beside onnxruntime alone on the same features already in memory.

Runs on its own: ``python benchmarks/bench_models.py [--subjects 100000] [--seconds 3]``.
Builds its own synthetic domain (a SQLite table of N subjects with 20 numeric features)
and its own model with ``onnx.helper`` (MatMul, Add, Sigmoid), so it needs no
scikit-learn. Three measures, each for ``--seconds``:

- ``score``: batches of ``--batch`` subjects by key (the VALUES join), per-subject scores
  rounded as obliged; the path an operator's scoring request takes after the decision;
- ``cohort``: every subject at once (the cohort query), statistics of the scores;
- ``baseline``: onnxruntime alone, on the same batches, from a float32 array in memory.

Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from onnx import TensorProto, helper
from sqlmodel import Session

from dataauth.accounts.privacy import PrivacyBudgets
from dataauth.catalog import onnx_checks
from dataauth.catalog.store import ColumnInfo, DatasetInfo
from dataauth.catalog.submissions import ModelSubmission, Submissions, digest_of
from dataauth.catalog.tables import Dataset, DatasetColumn
from dataauth.domain.database import Domain, open_domain
from dataauth.identity.consent import issue_consent
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring, SubjectHasher
from dataauth.operations.model import Cohort, Model, Plan
from dataauth.store.engine import gateway_engine
from harness import free_port, process_cpu

FEATURES = [f"f{i:02d}" for i in range(20)]
TARGETS = {
    "score_subjects_per_second_min": 50_000,
    "http_score_to_in_process_score_ratio_min": 0.3,
}
OBLIGATIONS = {"batch_limit": 100_000, "min_group_size": 20, "score_digits": 2}


def make_model(width: int, seed: int = 7) -> bytes:
    """A logistic regression: sigmoid(X · w + b), float32, batch dynamic."""
    rng = np.random.default_rng(seed)
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], rng.normal(0, 0.3, width).tolist())
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [0.1])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "w"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["p"]),
        ],
        "logistic",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def make_domain(path: Path, subjects: int, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, (subjects, len(FEATURES)))
    with sqlite3.connect(path) as db:
        columns = ", ".join(f"{c} REAL NOT NULL" for c in FEATURES)
        db.execute(f"CREATE TABLE applicants (applicant_id TEXT PRIMARY KEY, {columns})")
        marks = ", ".join("?" for _ in range(len(FEATURES) + 1))
        db.executemany(
            f"INSERT INTO applicants VALUES ({marks})",
            ((f"A{i:09d}", *row) for i, row in enumerate(values.tolist())),
        )


def timed(seconds: float, step) -> tuple[int, float]:
    """Run ``step`` (which returns how many subjects it scored) for about ``seconds``."""
    done, started = 0, time.perf_counter()
    while True:
        done += step()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done, elapsed


def register(storage) -> None:
    """The synthetic dataset in the gateway's catalog: 20 numeric features."""
    with Session(storage) as session:
        session.merge(
            Dataset(
                id="applicants",
                title="bench",
                department="bench",
                table_name="applicants",
                key_column="applicant_id",
                version="1",
            )
        )
        session.merge(
            DatasetColumn(
                dataset_id="applicants",
                name="applicant_id",
                title="key",
                type="string",
                level="L4",
                uses=["key"],
            )
        )
        for c in FEATURES:
            session.merge(
                DatasetColumn(
                    dataset_id="applicants",
                    name=c,
                    title=c,
                    type="number",
                    level="L3",
                    uses=["compare", "feature"],
                )
            )
        session.commit()  # fmt: skip


def in_process(args, storage, domain_file: Path, content: bytes, keys: list[str]) -> dict:
    """The kind's execute and disclose, called directly (no HTTP, no policy, no audit)."""
    graph = onnx_checks.parse(content, 1 << 20)
    now = datetime.now(UTC)
    row = ModelSubmission(
        id="m-0000000000000000",
        digest=digest_of(content),
        operator_id="bench",
        manifest=MANIFEST,
        summary=graph.summary,
        status="approved",
        submitted_at=now,
        conditions={
            "expires": (now + timedelta(days=1)).isoformat(),
            "max_runs": None,
            "forms": ["score", "cohort"],
        },
    )
    registry = Submissions(storage)
    with storage.begin() as connection:  # the bench's own row: no review step, no entry
        registry.add(connection, row, content)
    columns = {c: ColumnInfo(c, c, "number", "L3", ("feature",)) for c in FEATURES}
    dataset = DatasetInfo("applicants", "bench", "bench", "applicants", "applicant_id", "1",
                          columns)  # fmt: skip
    domain = Domain(open_domain(f"sqlite:///{domain_file}"))
    kind = Model(
        None,  # type: ignore[arg-type]  (describe is not called: no catalog needed)
        domain,
        SubjectHasher(b"bench"),
        registry,
        PrivacyBudgets(storage),
        lambda: datetime.now(UTC),
    )
    batches = [keys[i : i + args.batch] for i in range(0, len(keys), args.batch)]
    plans = [Plan(row, dataset, "score", (tuple(FEATURES),), b, None) for b in batches]
    cohort = Plan(row, dataset, "cohort", (tuple(FEATURES),), [], Cohort())
    cursor = {"i": 0}

    def score() -> int:
        plan = plans[cursor["i"] % len(plans)]
        cursor["i"] += 1
        return len(kind.disclose(kind.execute(plan, OBLIGATIONS), plan, OBLIGATIONS)["results"])

    def everyone() -> int:
        result = kind.disclose(kind.execute(cohort, OBLIGATIONS), cohort, OBLIGATIONS)
        return int(result["cohort"]["count"])

    with sqlite3.connect(domain_file) as db:
        matrix = np.array(
            db.execute(f"SELECT {', '.join(FEATURES)} FROM applicants").fetchall(),
            dtype=np.float32,
        )
    arrays = [matrix[i : i + args.batch] for i in range(0, len(matrix), args.batch)]
    sess = kind.session(row.digest)

    def baseline() -> int:
        x = arrays[cursor["i"] % len(arrays)]
        cursor["i"] += 1
        return len(sess.run(["p"], {"X": x})[0])

    score()  # warm the statement cache and the session
    results = {}
    for name, step in (("score", score), ("cohort", everyone), ("onnxruntime", baseline)):
        cursor["i"] = 0
        results[name] = timed(args.seconds, step)
    return results


def over_http(args, data_dir: Path, content: bytes, keys: list[str]) -> dict:
    """The whole path: a gateway process, the model submitted and approved over HTTP,
    then scoring requests (consent checked per subject) and cohort requests."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "serve", "--demo", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(600):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            keyring = Keyring(data_dir / "keys")

            def bearer(subject: str, *roles: str) -> dict[str, str]:
                token = issue_token(
                    keyring,
                    subject=subject,
                    issuer="dataauth-dev",
                    audience="dataauth",
                    roles=roles or ("operator",),
                )
                return {"Authorization": f"Bearer {token}"}  # fmt: skip

            bank = bearer("demo-bank")
            body = {"manifest": MANIFEST, "onnx": base64.b64encode(content).decode()}
            submitted = http.post("/v1/models", json=body, headers=bank)
            submitted.raise_for_status()
            model = submitted.json()["id"]
            expires = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            http.post(
                f"/v1/models/{model}/approve",
                json={"expires": expires},
                headers=bearer("bench-department", "department"),
            ).raise_for_status()
            hasher = keyring.subject_hasher()
            size = min(args.batch, 500)  # the demo bundle's batch limit for models
            subjects = [
                {"key": key, "consent": issue_consent(
                    keyring, issuer="dataauth-consent-dev",
                    subject_hash=hasher("applicants", key), operator="demo-bank",
                    purpose="credit", products=["model:bench"])}
                for key in keys[:size]
            ]  # fmt: skip
            scoring = json.dumps({"purpose": "credit", "subjects": subjects}).encode()
            cohort = json.dumps({"purpose": "credit", "cohort": {}}).encode()
            headers = {**bank, "Content-Type": "application/json"}
            errors = 0

            def post(raw: bytes, field: str) -> int:
                nonlocal errors
                response = http.post(f"/v1/models/{model}/run", content=raw, headers=headers)
                if response.status_code != 200:
                    errors += 1
                    return 0
                answer = response.json()
                return len(answer["results"]) if field == "results" else answer["cohort"]["count"]

            post(scoring, "results")
            # the gateway's own CPU while it scores (server and workers, from /proc): a
            # figure the machine's other load moves less than subjects a second
            before = sum(process_cpu(server.pid).values())
            score = timed(args.seconds, lambda: post(scoring, "results"))
            used = sum(process_cpu(server.pid).values()) - before
            return {
                "score": score,
                "score_cpu_us_per_subject": round(used / score[0] * 1e6, 1) if score[0] else None,
                "cohort": timed(args.seconds, lambda: post(cohort, "cohort")),
                "errors": errors,
                "batch": size,
            }
    finally:
        server.terminate()
        server.wait(timeout=10)


MANIFEST = {
    "name": "bench",
    "dataset": "applicants",
    "inputs": [{"name": "X", "columns": FEATURES}],
    "output": {"name": "p", "column": 0, "kind": "probability", "meaning": "bench"},
    "purpose": "credit",
    "forms": ["score", "cohort"],
}


def rate(measure: tuple[int, float]) -> int:
    done, elapsed = measure
    return round(done / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-http", action="store_true", help="skip the gateway process")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-models-")) / "data"
    data_dir.mkdir()
    # the synthetic table is the department's database of a demo gateway started on it
    domain_file = data_dir / "demo-domain.sqlite"
    make_domain(domain_file, args.subjects)
    storage = gateway_engine(f"sqlite:///{data_dir / 'gateway.sqlite'}")
    register(storage)
    content = make_model(len(FEATURES))
    keys = [f"A{i:09d}" for i in range(args.subjects)]

    local = in_process(args, storage, domain_file, content, keys)
    storage.dispose()
    remote = None if args.no_http else over_http(args, data_dir, content, keys)
    metrics = {
        "score_subjects_per_second": rate(local["score"]),
        "cohort_subjects_per_second": rate(local["cohort"]),
        "errors": 0,
    }
    if remote:
        metrics.update(
            http_score_subjects_per_second=rate(remote["score"]),
            http_cohort_subjects_per_second=rate(remote["cohort"]),
            # issue 13's figure: per-subject scoring over HTTP (a consent a subject)
            # beside the same scoring path in process, in this run
            http_score_to_in_process_score_ratio=round(
                rate(remote["score"]) / rate(local["score"]), 3
            ),
            http_score_gateway_cpu_us_per_subject=remote["score_cpu_us_per_subject"],
            errors=remote["errors"],
        )
    report = {
        "benchmark": "models",
        "setup": {
            "subjects": args.subjects,
            "features": len(FEATURES),
            "batch": args.batch,
            "http_batch": remote["batch"] if remote else None,
            "onnxruntime_threads": 1,
        },
        "metrics": metrics,
        "baseline": {"onnxruntime_subjects_per_second": rate(local["onnxruntime"])},
        "targets": TARGETS,
        "met": rate(local["score"]) >= TARGETS["score_subjects_per_second_min"],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
