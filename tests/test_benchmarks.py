"""Every benchmark runs on its own and ends with its JSON line (tiny sizes: CI checks that
they work, not what they measure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("verify", ["--seconds", "0.5", "--workers", "1", "--batch", "50"]),
        (
            "audit",
            [
                "--entries",
                "2000",
                "--raw-rows",
                "5000",
                "--seconds",
                "1",
                "--threads",
                "4",
                "--processes",
                "1",
                "--writer",
            ],
        ),
        ("policy", ["--decisions", "200", "--seconds", "0.5"]),
        ("query", ["--rows", "5000", "--repeat", "2"]),
        ("models", ["--subjects", "2000", "--batch", "100", "--seconds", "0.3"]),
        ("he", ["--seconds", "0.5", "--rows", "512", "--batch", "256", "--workers", "1"]),
        ("scale", ["--seconds", "0.5", "--clients", "2", "--batch", "50"]),
        ("cli", ["--runs", "2"]),
        ("soak", ["--minutes", "0.2", "--clients", "2", "--residents", "50", "--samples", "4"]),
    ],
)
def test_benchmark_runs_and_reports(name, args):
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"bench_{name}.py"), *args],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == name
    assert set(report) >= {"metrics", "baseline", "targets"}
    metrics = report["metrics"]
    assert metrics.get("errors", 0) == 0, metrics
    rates = {k: v for k, v in metrics.items() if "per_second" in k}
    assert rates and all(v > 0 for v in rates.values()), metrics
