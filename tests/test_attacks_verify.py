"""Verification (核验) as an oracle: what a motivated operator learns about one resident
across many requests, against the demo with its shipped policy.

Each test is the best attack we know of its kind; its docstring says what the attack got
before per-subject disclosure budgets and fixed cut points, and what it is left with
now. A test fails if the attacker gets more than the policy's numbers promise: 16 bits
about one subject per operator and 32 across all operators, in any 30 days.
"""

from __future__ import annotations

import json
import math
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import start_beside, stop_gateway
from dataauth.config import SOURCE_POLICIES
from dataauth.policy.bundle import load_bundle

pytestmark = pytest.mark.slow

INCOME_CUTS = [3000, 5000, 8000, 12000, 20000]
PER_OPERATOR, TOTAL, WINDOW_DAYS = 16, 32, 30


@pytest.fixture(scope="module")
def own(gateway, tmp_path_factory):
    """A gateway of its own: the attacks spend subjects' budgets, which others share."""
    running = start_beside(gateway, tmp_path_factory.mktemp("attacks"),
                           env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})  # fmt: skip
    yield running
    stop_gateway(running)


@pytest.fixture
def http(own):
    with httpx.Client(base_url=own.url, timeout=60) as client:
        yield client


def bearer(own, operator: str = "demo-bank", **kwargs: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {own.token(operator, **kwargs)}"}


def residents(own, n: int, offset: int) -> list[tuple[str, str, int]]:
    """Residents no other test here asks about: each test spends budgets of its own."""
    with own.domain_db() as db:
        return db.execute(
            "SELECT resident_id, name, monthly_income FROM residents ORDER BY resident_id "
            "LIMIT ? OFFSET ?",
            (n, offset),
        ).fetchall()


def ask(http, own, product: str, subjects: list[dict], operator="demo-bank", purpose="credit"):
    body = {"purpose": purpose, "subjects": subjects}
    return http.post(f"/v1/verify/{product}", json=body, headers=bearer(own, operator))


def entry(http, own, index: int, operator: str = "demo-bank") -> dict:
    """The audit entry at ``index``, as its operator reads it."""
    found = http.get(f"/v1/audit/entries?from={index}&limit=1", headers=bearer(own, operator))
    assert found.status_code == 200, found.text
    return found.json()["entries"][0]["entry"]


def wrong_names(n: int, seed: int, truth: str) -> list[str]:
    """``n`` distinct plausible names, none of them ``truth``."""
    rng = random.Random(seed)
    surnames, given = (
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗",
        "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂",
    )
    names = {rng.choice(surnames) + rng.choice(given) + rng.choice(given) for _ in range(n * 3)}
    return sorted(names - {truth})[:n]


def test_a_threshold_walk_tells_no_more_than_the_departments_cut_points(http, own):
    """Before: one batch of the same resident with 1,000 thresholds bracketed income to 50
    yuan, a second batch gave it to the yuan. Now a threshold is one of the department's
    five cut points: a batch of others is refused (and audited as rejected); asking all
    five at once places the income in one of six intervals, and asking again tells
    nothing and costs nothing. Left: an interval at least 2,000 yuan wide, or "at least
    20,000": log2(6) = 2.58 bits, however often the operator asks."""
    (key, _, income), *_ = residents(own, 1, offset=0)
    walk = [{"key": key, "claims": {"threshold": t}} for t in range(0, 50_000, 50)]
    refused = ask(http, own, "income-at-least", walk)
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_claim"
    assert entry(http, own, refused.json()["audit"]["entry"])["outcome"] == "rejected"

    cuts = [{"key": key, "claims": {"threshold": t}} for t in INCOME_CUTS]
    answered = ask(http, own, "income-at-least", cuts)
    assert answered.status_code == 200, answered.text
    passed = [r["result"] for r in answered.json()["results"]]
    low = max([0] + [t for t, ok in zip(INCOME_CUTS, passed, strict=True) if ok])
    high = min([math.inf] + [t for t, ok in zip(INCOME_CUTS, passed, strict=True) if not ok])
    assert low <= income < high
    assert high - low >= 2000
    spent = entry(http, own, answered.json()["audit"]["entry"])["disclosure"]
    assert [d["bits"] for d in spent] == [pytest.approx(math.log2(6), abs=1e-3)]

    again = ask(http, own, "income-at-least", cuts[::-1] * 3)
    assert again.status_code == 200
    assert "disclosure" not in entry(http, own, again.json()["audit"]["entry"])


def test_a_thousand_names_for_one_id_number_are_refused_whole(http, own):
    """Before: one identity-match batch with 1,000 candidate names for one ID number
    returned exactly the true name. Now each distinct name is a question of one bit, and
    every copy of the subject in a batch asks its own: 1,000 questions are over the 16
    bits an operator may learn about one resident in 30 days, so the batch is refused
    whole, nothing answered. Left: 16 names tried per operator per 30 days (32 across
    operators); the 17th, the true name included, is refused until the window moves."""
    (key, name, _), *_ = residents(own, 1, offset=1)
    candidates = [*wrong_names(999, seed=1, truth=name), name]
    random.Random(2).shuffle(candidates)
    batch = [{"key": key, "claims": {"name": n}} for n in candidates]
    refused = ask(http, own, "identity-match", batch)
    assert refused.status_code == 429, refused.text
    problem = refused.json()
    assert problem["code"] == "subject_budget_exhausted"
    assert "results" not in problem and name not in refused.text and key not in refused.text
    assert problem["budget"] == PER_OPERATOR and problem["remaining"] == PER_OPERATOR

    sixteen = [
        {"key": key, "claims": {"name": n}} for n in wrong_names(PER_OPERATOR, seed=3, truth=name)
    ]
    answered = ask(http, own, "identity-match", sixteen)
    assert answered.status_code == 200, answered.text
    assert not any(r["result"] for r in answered.json()["results"])
    assert ask(http, own, "identity-match", sixteen).status_code == 200  # asked: free

    truth = ask(http, own, "identity-match", [{"key": key, "claims": {"name": name}}])
    assert truth.status_code == 429
    problem = truth.json()
    assert (problem["subject"], problem["scope"], problem["remaining"]) == (0, "operator", 0)
    renews = datetime.fromisoformat(problem["resets"].replace("Z", "+00:00"))
    soon = datetime.now(UTC) + timedelta(days=WINDOW_DAYS)
    assert soon - timedelta(minutes=5) < renews <= soon + timedelta(minutes=1)
    assert int(truth.headers["Retry-After"]) > (WINDOW_DAYS - 1) * 86400
    limited = entry(http, own, problem["audit"]["entry"])
    assert limited["outcome"] == "limited" and "disclosure" not in limited


def test_operators_pooling_their_answers_learn_no_more_than_the_total(http, own):
    """Several licensed operators could pool what each learnt. The total budget counts
    every operator's distinct questions once: with a published total of 20 bits, demo-bank
    spends 16 on one resident and demo-insurer has 4 left, though its own 16 are unspent.
    A question already asked by another operator adds nothing to the total."""
    bundle = load_bundle(SOURCE_POLICIES)
    data = json.loads(json.dumps(bundle.data))
    data["dataauth"]["limits"]["subject_budget"]["defaults"]["bits_total"] = 20
    department = bearer(own, "a-department", roles=("department",))
    published = http.post("/v1/admin/policy", json={"modules": bundle.modules, "data": data},
                          headers=department)  # fmt: skip
    assert published.status_code == 200, published.text
    try:
        time.sleep(1.0)  # five catalog TTLs: the gateway has read the published bundle
        (key, name, _), *_ = residents(own, 1, offset=2)
        names = wrong_names(21, seed=4, truth=name)
        bank = [{"key": key, "claims": {"name": n}} for n in names[:16]]
        answered = ask(http, own, "identity-match", bank)
        assert answered.status_code == 200, answered.text
        insurer = [{"key": key, "claims": {"name": n}} for n in names[16:21]]
        over = ask(http, own, "identity-match", insurer, "demo-insurer", "underwriting")
        assert over.status_code == 429, over.text
        assert (over.json()["scope"], over.json()["remaining"]) == ("total", 4)
        shared = [{"key": key, "claims": {"name": n}} for n in names[:4]]  # the bank's
        answered = ask(http, own, "identity-match", insurer[:4] + shared, "demo-insurer",
                       "underwriting")  # fmt: skip
        assert answered.status_code == 200, answered.text
        spent = entry(http, own, answered.json()["audit"]["entry"], "demo-insurer")
        assert [d["bits"] for d in spent["disclosure"]] == [8]  # its own 8, the total's 4
    finally:
        bundle = load_bundle(SOURCE_POLICIES)
        restored = http.post("/v1/admin/policy", headers=department,
                             json={"modules": bundle.modules, "data": bundle.data})  # fmt: skip
        assert restored.status_code == 200


def test_bisection_on_a_free_threshold_is_bounded_by_the_budget_alone(http, own):
    """A department may still publish a free threshold: its choice, and then the budget is
    the only bound. Bisection with single requests learns one bit a question, and the
    17th is refused. Left: an interval of 50,000 / 2^16 yuan, to the yuan, which is why
    the demo's threshold products take cut points and why the policy authors' guide
    says to. The test holds the gateway to its number: never a 17th bit."""
    document = {"products": [{
        "id": "income-at-least-free", "kind": "verify", "title": "收入核验 (free threshold)",
        "dataset": "residents",
        "spec": {"checks": [{"column": "monthly_income", "op": "ge", "param": "threshold"}],
                 "parameters": {"threshold": {"type": "number", "minimum": 0}}},
    }], "licences": []}  # fmt: skip
    current = http.get("/v1/admin/catalog", headers=bearer(own, "dept", roles=("department",)))
    licence = next(li for li in current.json()["licences"] if li["operator_id"] == "demo-bank")
    licence["products"] = [*licence["products"], "income-at-least-free"]
    document["licences"] = [licence]
    published = http.put("/v1/admin/catalog", json=document,
                         headers=bearer(own, "dept", roles=("department",)))  # fmt: skip
    assert published.status_code == 200, published.text
    (key, _, income), *_ = residents(own, 1, offset=3)
    low, high, asked = 0.0, 50_000.0, 0
    for _ in range(200):
        middle = (low + high) / 2
        response = ask(http, own, "income-at-least-free",
                       [{"key": key, "claims": {"threshold": middle}}])  # fmt: skip
        if response.status_code == 404 and asked == 0:  # within the catalog's TTL
            time.sleep(0.05)
            continue
        if response.status_code == 429:
            assert response.json()["code"] == "subject_budget_exhausted"
            break
        assert response.status_code == 200, response.text
        asked += 1
        if response.json()["results"][0]["result"]:
            low = middle
        else:
            high = middle
    assert asked == PER_OPERATOR
    assert low <= income < high
    assert high - low >= 50_000 / 2**PER_OPERATOR
