"""Policy decisions: latency per in-process engine on the demo bundle, and the spine.

Runs on its own: ``python benchmarks/bench_policy.py [--decisions 5000]``. Prints one
JSON object as its last line.

- decision latency, cold, per engine (regopy, regorus): every input distinct (time,
  operator, product, subject count vary), the memo off, so each decision is a full
  evaluation including the conversion of the input and the answer; beside it, a
  trivial rule on the same engine (what evaluation costs at all), and for the default
  engine the same inputs with the memo on and a repeating mix, as bursts give.
- the baseline ``bare_request_us``: one bare HTTP request (FastAPI parsing the
  verification body, returning a constant: ``bench_verify.bare_app``, one worker),
  p50 over sequential keep-alive requests in this run; each decision is also given as
  a ratio to it (the target: at most 0.1).
- conversion: for regorus, the input set as JSON text (what the engine does, reusing
  the memo key's bytes) against its Python-object path (wrong for booleans, so not
  used; timed only to show what it would save).
- spine throughput: ``Gateway.handle`` in process on the demo domain, with the full
  demo policy, for a single-subject verification (no HTTP), memo on and off, per engine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from dataauth.app import build_gateway, prepare
from dataauth.config import SOURCE_POLICIES, Settings
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.base import Call
from dataauth.operations.verify import VerifyRequest
from dataauth.policy.bundle import Bundle, bundle_digest, load_bundle
from dataauth.policy.cases import load_cases
from dataauth.policy.engines import IN_PROCESS
from dataauth.policy.regorus import RULE, compile_engine
from harness import free_port, wait_ready

TARGETS = {"decision_p50_us_max": 150, "decision_ratio_to_bare_request_max": 0.1}
TRIVIAL = 'package dataauth\nimport rego.v1\ndecision := {"allow": input.n >= 0}\n'
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


def latencies(engine, items: list[dict]) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        engine.decide(item)
        out.append(time.perf_counter() - started)
    return out


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50_us": round(q[49] * 1e6, 1), "p99_us": round(q[98] * 1e6, 1)}


def timed(step, items: list) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        step(item)
        out.append(time.perf_counter() - started)
    return out


def bare_request_us(count: int) -> dict[str, float]:
    """Sequential keep-alive requests to the bare app of bench_verify, one worker."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench_verify:bare_app",
         "--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        body = json.dumps({"purpose": "credit", "subjects": [{"key": "1", "claims": {}}]})
        headers = {"Content-Type": "application/json"}

        def one(_: int) -> None:
            conn.request("POST", "/v1/verify/identity-match", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200

        timed(one, list(range(200)))
        return summary(timed(one, list(range(count))))
    finally:
        server.terminate()
        server.wait(timeout=10)


def trivial_bundle() -> Bundle:
    modules = {"dataauth/decision.rego": TRIVIAL}
    return Bundle(modules, {}, bundle_digest(modules, {}))


def engine_figures(name: str, bundle: Bundle, decisions: int) -> dict[str, dict]:
    make = IN_PROCESS[name]
    cold_engine = make(bundle, memo_size=0)
    latencies(cold_engine, inputs(200, True))  # warm the engine
    trivial_engine = make(trivial_bundle(), memo_size=0)
    small = [{"n": n} for n in range(decisions)]
    latencies(trivial_engine, small[:200])
    return {
        "cold": summary(latencies(cold_engine, inputs(decisions, True))),
        "trivial": summary(latencies(trivial_engine, small)),
    }


def regorus_conversion(bundle: Bundle, decisions: int) -> dict[str, dict]:
    """The engine alone (no memo, no parse), the input as JSON text or as Python objects."""
    engine, items = compile_engine(bundle), inputs(decisions, True)
    texts = [orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode() for item in items]

    def as_text(text: str) -> None:
        engine.set_input_json(text)
        engine.eval_rule_as_json(RULE)

    def as_objects(item: dict) -> None:
        engine.set_input(item)
        engine.eval_rule(RULE)

    timed(as_text, texts[:200])
    return {
        "json_text": summary(timed(as_text, texts)),
        "objects": summary(timed(as_objects, items)),
    }


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
    bare = bare_request_us(max(args.decisions // 5, 200))
    engines = {name: engine_figures(name, bundle, args.decisions) for name in IN_PROCESS}
    conversion = regorus_conversion(bundle, args.decisions)
    memo_engine = IN_PROCESS["regorus"](bundle)
    memoised = summary(latencies(memo_engine, inputs(args.decisions, False)))

    data_dir = Path(tempfile.mkdtemp(prefix="bench-policy-")) / "data"
    spines = {}
    for name in IN_PROCESS:
        settings = Settings(data_dir=data_dir, demo=True, policy_engine=name)
        prepare(settings)
        spines[name] = (spine(settings, True, args.seconds), spine(settings, False, args.seconds))

    metrics: dict[str, float] = {}
    for name, figures in engines.items():
        label = "regopy" if name == "embedded" else name
        for kind, value in figures.items():
            metrics[f"{label}_decision_{kind}_p50_us"] = value["p50_us"]
            metrics[f"{label}_decision_{kind}_p99_us"] = value["p99_us"]
            metrics[f"{label}_decision_{kind}_ratio_to_bare_request"] = round(
                value["p50_us"] / bare["p50_us"], 3
            )
        memo_rate, no_memo_rate = spines[name]
        metrics[f"{label}_spine_requests_per_second_memo"] = round(memo_rate, 1)
        metrics[f"{label}_spine_requests_per_second_no_memo"] = round(no_memo_rate, 1)
    metrics["regorus_speedup_over_regopy_cold"] = round(
        engines["embedded"]["cold"]["p50_us"] / engines["regorus"]["cold"]["p50_us"], 1
    )
    metrics["regorus_engine_only_json_text_p50_us"] = conversion["json_text"]["p50_us"]
    metrics["regorus_engine_only_objects_p50_us"] = conversion["objects"]["p50_us"]
    metrics["regorus_decision_memoised_p50_us"] = memoised["p50_us"]
    metrics["regorus_decision_memoised_p99_us"] = memoised["p99_us"]

    print(json.dumps({
        "benchmark": "policy",
        "metrics": metrics,
        "baseline": {
            "bare_request_us": bare["p50_us"],
            "bare_request_p99_us": bare["p99_us"],
            "note": "same run: one bare FastAPI request (bench_verify.bare_app, one worker, "
                    "sequential keep-alive); cold = every decision a full evaluation; "
                    "trivial = a one-comparison rule on the same engine; spine without memo",
        },
        "targets": TARGETS,
        "setup": {"decisions": args.decisions, "bundle": bundle.digest,
                  "engines": {"regopy": "embedded (regopy, rego-cpp)",
                              "regorus": "regorus (celine-regorus, interpreter)"}},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
