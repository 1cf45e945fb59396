"""Usage control over HTTP: rate, daily quota and per-subject limits, 429 with Retry-After,
and exact counting under concurrent requests on two gateway processes."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import DATABASES, on_each_database, start_beside, stop_gateway
from test_audit_log import dataauth
from test_policy_admin import POLICIES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


LIMITS = {
    "demo-bank": {"rate_per_minute": 1000, "daily_quota": 50, "subject_per_day": 3},
    "demo-insurer": {"rate_per_minute": 5},
}


@pytest.fixture(scope="module")
def limited(gateway, tmp_path_factory):
    """Two gateway processes under a published bundle with low limits."""
    running = start_beside(gateway, tmp_path_factory.mktemp("usage"), "--workers", "2",
                           env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})  # fmt: skip
    publish_limits(running, LIMITS, tmp_path_factory.mktemp("usage-policy"))
    time.sleep(0.5)  # both workers take the bundle within their TTL
    with sqlite3.connect(gateway.data_dir / "demo-domain.sqlite") as db:
        running.keys = [r[0] for r in db.execute("SELECT resident_id FROM residents LIMIT 400")]
    yield running
    stop_gateway(running)


def publish_limits(running, operators: dict, where, epsilon: float | None = None) -> None:
    """Publish the demo bundle with these usage limits per operator and no hours rule
    (and, given ``epsilon``, that privacy budget for demo-bank's queries)."""
    candidate = where / "policies"
    shutil.copytree(POLICIES, candidate)
    limits_file = candidate / "dataauth" / "limits" / "data.json"
    limits = json.loads(limits_file.read_text())
    limits["usage"]["operators"] = operators
    limits["hours"] = {}
    if epsilon is not None:
        limits["query"]["budget"]["operators"]["demo-bank"]["epsilon"] = epsilon
    limits_file.write_text(json.dumps(limits))
    shutil.rmtree(candidate / "tests")  # this bundle's limits are for this test only
    (candidate / "tests").mkdir()
    (candidate / "tests" / "t.json").write_text(json.dumps(
        {"base": {}, "cases": [{"name": "default deny", "allow": False, "reasons": ["no_rule"],
                                "patch": None}]}))  # fmt: skip
    published = dataauth("policy", "publish", str(candidate), "--url", running.url,
                         "--data-dir", str(running.data_dir))  # fmt: skip
    assert published.returncode == 0, published.stderr + published.stdout


def ask(running, operator, product, keys, purpose="credit"):
    claims = {"identity-match": {"name": "张三"}, "income-at-least": {"threshold": 3000}}.get(
        product, {"threshold": 12}
    )
    body = {"purpose": purpose, "subjects": [{"key": k, "claims": claims} for k in keys]}
    return httpx.post(f"{running.url}/v1/verify/{product}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {running.token(operator)}"})  # fmt: skip


def test_rate_limit_says_which_and_when(limited):
    for n in range(12):
        response = ask(limited, "demo-insurer", "identity-match", [limited.keys[n]], "underwriting")
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
    assert response.status_code == 429
    problem = response.json()
    assert problem["code"] == "rate_limited" and problem["limit"] == "rate_per_minute"
    assert problem["allowed"] == 5 and "resets at" in problem["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert isinstance(problem["audit"]["entry"], int)  # the refusal is on the record


def test_one_subject_cannot_be_probed_past_its_limit(limited):
    subject = limited.keys[100]
    for _ in range(3):
        assert ask(limited, "demo-bank", "income-at-least", [subject]).status_code == 200
    refused = ask(limited, "demo-bank", "income-at-least", [subject])
    assert refused.status_code == 429 and refused.json()["code"] == "subject_limit_reached"
    # the refusal spent nothing: another subject still goes through
    assert ask(limited, "demo-bank", "income-at-least", [limited.keys[101]]).status_code == 200


def test_daily_quota_counts_subjects(limited):
    over = ask(limited, "demo-bank", "social-insurance-at-least", limited.keys[200:251])
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    assert int(over.headers["retry-after"]) > 0
    assert ask(limited, "demo-bank", "social-insurance-at-least",
               limited.keys[200:250]).status_code == 200  # fmt: skip


def test_no_double_counting_across_processes(limited):
    keys = limited.keys[300:370]

    def code(key: str) -> int:
        return ask(limited, "demo-bank", "identity-match", [key]).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(code, keys))
    assert codes.count(200) == 50 and codes.count(429) == 20
