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
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from dataauth.catalog import onnx_checks
from dataauth.catalog.models import ModelRegistry, ModelSubmission, digest_of
from dataauth.catalog.store import ColumnInfo, DatasetInfo
from dataauth.domain.database import Domain, open_domain
from dataauth.keyring import SubjectHasher
from dataauth.operations.model import Cohort, Model, Plan
from dataauth.storage import gateway_engine
from dataauth.usage import UsageMeter

FEATURES = [f"f{i:02d}" for i in range(20)]
TARGETS = {"score_subjects_per_second_min": 50_000}
OBLIGATIONS = {"batch_limit": 100_000, "min_cohort": 20, "score_digits": 2}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    where = Path(tempfile.mkdtemp(prefix="bench-models-"))
    make_domain(where / "domain.sqlite", args.subjects)
    storage = gateway_engine(f"sqlite:///{where / 'gateway.sqlite'}")
    content = make_model(len(FEATURES))
    graph = onnx_checks.parse(content, 1 << 20)
    onnx_checks.check_inputs(graph, [("X", len(FEATURES))], ("p", 0))

    now = datetime.now(UTC)
    row = ModelSubmission(
        id="m-0000000000000000",
        digest=digest_of(content),
        operator_id="bench",
        manifest={
            "name": "bench",
            "dataset": "applicants",
            "inputs": [{"name": "X", "columns": FEATURES}],
            "output": {"name": "p", "column": 0, "kind": "probability", "meaning": "bench"},
            "purpose": "credit",
            "forms": ["score", "cohort"],
        },
        summary=graph.summary,
        status="approved",
        submitted_at=now,
        conditions={
            "expires": (now + timedelta(days=1)).isoformat(),
            "max_runs": None,
            "forms": ["score", "cohort"],
        },
    )
    registry = ModelRegistry(storage)
    registry.add(row, content)
    columns = {c: ColumnInfo(c, c, "number", "L3", ("feature",)) for c in FEATURES}
    dataset = DatasetInfo(
        "applicants", "bench", "bench", "applicants", "applicant_id", "1", columns
    )
    domain = Domain(open_domain(f"sqlite:///{where / 'domain.sqlite'}"))
    kind = Model(
        None,  # type: ignore[arg-type]  (describe is not measured: no catalog needed)
        domain,
        SubjectHasher(b"bench"),
        registry,
        UsageMeter(storage),
        args.subjects,
        lambda: datetime.now(UTC),
    )

    keys = [f"A{i:09d}" for i in range(args.subjects)]
    batches = [keys[i : i + args.batch] for i in range(0, len(keys), args.batch)]
    plans = [Plan(row, dataset, "score", (tuple(FEATURES),), batch, None) for batch in batches]
    cohort = Plan(row, dataset, "cohort", (tuple(FEATURES),), [], Cohort())
    cursor = {"i": 0}

    def score() -> int:
        plan = plans[cursor["i"] % len(plans)]
        cursor["i"] += 1
        result = kind.disclose(kind.execute(plan, OBLIGATIONS), plan, OBLIGATIONS)
        return len(result["results"])

    def everyone() -> int:
        result = kind.disclose(kind.execute(cohort, OBLIGATIONS), cohort, OBLIGATIONS)
        return int(result["cohort"]["count"])

    with sqlite3.connect(where / "domain.sqlite") as db:
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
    for name, step in (("score", score), ("cohort", everyone), ("baseline", baseline)):
        cursor["i"] = 0
        done, elapsed = timed(args.seconds, step)
        results[name] = {"subjects": done, "seconds": round(elapsed, 3),
                         "per_second": round(done / elapsed)}  # fmt: skip
    report = {
        "benchmark": "models",
        "setup": {
            "subjects": args.subjects,
            "features": len(FEATURES),
            "batch": args.batch,
            "onnxruntime_threads": 1,
        },
        "metrics": {
            "score_subjects_per_second": results["score"]["per_second"],
            "cohort_subjects_per_second": results["cohort"]["per_second"],
            "errors": 0,
        },
        "baseline": {"onnxruntime_subjects_per_second": results["baseline"]["per_second"]},
        "targets": TARGETS,
        "detail": results,
    }
    report["met"] = results["score"]["per_second"] >= TARGETS["score_subjects_per_second_min"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
