"""Policy decisions: latency with the embedded engine on the demo bundle, and the spine.

Runs on its own: ``python benchmarks/bench_policy.py [--decisions 5000]``. Prints one
JSON object as its last line.

- decision latency, cold: every input distinct (time, operator, product, subject
  count vary), the memo off, so each decision is a full rego-cpp evaluation including
  the conversion of the input; beside it, the same inputs with the memo on (the
  gateway's setting) and a repeating mix of inputs, as bursts of alike requests give.
- spine throughput: ``Gateway.handle`` in process on the demo domain, with the full
  demo policy, for a single-subject verification (no HTTP), with the memo on and off.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from dataauth.app import build_gateway, prepare
from dataauth.config import SOURCE_POLICIES, Settings
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.base import Call
from dataauth.operations.verify import VerifyRequest
from dataauth.policy.bundle import load_bundle
from dataauth.policy.cases import load_cases
from dataauth.policy.embedded import EmbeddedEngine

TARGETS = {"decision_p50_us_max": 150}
PRODUCTS = ["identity-match", "income-at-least", "social-insurance-at-least", "enterprise-active"]


def inputs(count: int, distinct: bool) -> list[dict]:
    base = load_cases(SOURCE_POLICIES)[0].input
    rng = random.Random(3)
    made = []
    for n in range(count):
        k = n if distinct else n % 50
        made.append(
            base
            | {
                "time": f"2026-11-25T{8 + k // 3600 % 12:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z",
                "operation": {"kind": "verify", "product": PRODUCTS[k % len(PRODUCTS)]},
                "subjects": {"count": rng.randint(1, 1200) if distinct else 1 + k % 7},
            }
        )
    return made


def latencies(engine: EmbeddedEngine, items: list[dict]) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        engine.decide(item)
        out.append(time.perf_counter() - started)
    return out


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50_us": round(q[49] * 1e6, 1), "p99_us": round(q[98] * 1e6, 1)}


def spine(settings: Settings, memo: bool, seconds: float) -> float:
    gateway, _, _ = build_gateway(settings)
    if not memo:
        engine = gateway.policy.engine()
        engine._memo_size = 0
    token = "Bearer " + issue_token(Keyring(settings.keys_dir), subject="demo-bank",
                                    issuer=settings.issuer, audience=settings.audience)  # fmt: skip
    with sqlite3.connect(settings.data_dir / "demo-domain.sqlite") as db:
        rows = db.execute("SELECT resident_id, name FROM residents LIMIT 500").fetchall()
    calls = [
        Call("verify", VerifyRequest.model_validate(
            {"purpose": "credit", "subjects": [{"key": k, "claims": {"name": v}}]}),
            target="identity-match")
        for k, v in rows
    ]  # fmt: skip
    done, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        gateway.handle(token, "verify", calls[done % len(calls)])
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    bundle = load_bundle(SOURCE_POLICIES)
    cold_engine = EmbeddedEngine(bundle, memo_size=0)
    latencies(cold_engine, inputs(200, True))  # warm the interpreter
    cold = summary(latencies(cold_engine, inputs(args.decisions, True)))
    memo_engine = EmbeddedEngine(bundle)
    memoised = summary(latencies(memo_engine, inputs(args.decisions, False)))

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-policy-")) / "data", demo=True)
    prepare(settings)
    with_memo = spine(settings, True, args.seconds)
    without_memo = spine(settings, False, args.seconds)

    print(json.dumps({
        "benchmark": "policy",
        "metrics": {
            "decision_cold_p50_us": cold["p50_us"],
            "decision_cold_p99_us": cold["p99_us"],
            "decision_memoised_p50_us": memoised["p50_us"],
            "decision_memoised_p99_us": memoised["p99_us"],
            "spine_requests_per_second_memo": round(with_memo, 1),
            "spine_requests_per_second_no_memo": round(without_memo, 1),
        },
        "baseline": {"note": "cold = every decision a full evaluation; spine without memo"},
        "targets": TARGETS,
        "setup": {"decisions": args.decisions, "bundle": bundle.digest},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
