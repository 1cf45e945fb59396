"""Usage and budgets over HTTP: a department sees every operator's, an operator only its
own; counters, ε and subject budgets move with the calls made."""

from __future__ import annotations

import pytest

from conftest import DATABASES, on_each_database

DEPARTMENT = {"operator": "demo-department", "roles": ("department",)}
# the insurer's licence and the bundle's data set it limits; the bank has none to count
INSURED = {"purpose": "underwriting",
           "subjects": [{"key": "440115195011083222", "claims": {"threshold": 12}},
                        {"key": "110101198001010011", "claims": {"threshold": 12}}]}  # fmt: skip
PRODUCT = "social-insurance-at-least"
QUERY = {
    "purpose": "credit",
    "sql": "SELECT district, AVG(monthly_income) AS m FROM residents GROUP BY district",
}


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


def used(report: dict) -> int:
    """Subjects the insurer asked about today through the product."""
    return sum(s["daily_quota"]["used"] for s in report["scopes"] if s["product"] == PRODUCT)


def scope(report: dict) -> dict:
    return next(s for s in report["scopes"] if s["product"] == PRODUCT)


def operator(report: dict, who: str) -> dict:
    return next(o for o in report["operators"] if o["operator"] == who)


def test_the_department_sees_an_operators_usage_go_up(client, auth) -> None:
    first = client.get("/v1/admin/usage", headers=auth(**DEPARTMENT)).json()
    before = operator(first, "demo-insurer")
    sent = client.post(f"/v1/verify/{PRODUCT}", json=INSURED, headers=auth("demo-insurer"))
    assert sent.status_code == 200, sent.text
    assert client.post("/v1/query", json=QUERY, headers=auth()).status_code == 200
    report = client.get("/v1/admin/usage", headers=auth(**DEPARTMENT)).json()
    after = operator(report, "demo-insurer")
    assert used(after) == used(before) + 2
    quota = scope(after)["daily_quota"]
    assert quota["allowed"] == 10000 and quota["left"] == quota["allowed"] - quota["used"]
    rate = scope(after)["rate_per_minute"]
    assert rate["used"] >= 1 and rate["allowed"] == 120
    assert scope(after)["subject_per_day"] == 20
    assert after["subjects_today"]["subjects"] >= 2 and after["subjects_today"]["allowed"] == 20
    assert after["subjects_today"]["most"] >= 1
    bank = operator(report, "demo-bank")
    residents = next(p for p in bank["privacy"] if p["dataset"] == "residents")
    assert residents["epsilon_spent"] > 0 and residents["epsilon_total"] > 0
    assert residents["epsilon_left"] == pytest.approx(
        residents["epsilon_total"] - residents["epsilon_spent"], abs=1e-5
    )
    assert after["disclosure"]["subjects"] >= 2
    assert {"near", "at", "window_days", "bits_per_operator"} <= set(after["disclosure"])
    today = after["days"][-1]
    assert len(after["days"]) == 14 and today["allowed"] >= before["days"][-1]["allowed"] + 1
    assert sum(d["allowed"] for d in report["days"]) >= sum(d["allowed"] for d in after["days"])
    # counts only: no keyed hash of any subject anywhere in the answer
    assert "subject" not in str(report).replace("subjects", "").replace("subject_", "")
    everyone = report["disclosure_all_operators"]
    assert everyone["subjects"] >= after["disclosure"]["subjects"]


def test_an_operator_sees_its_own_usage_and_no_one_elses(client, auth) -> None:
    sent = client.post(f"/v1/verify/{PRODUCT}", json=INSURED, headers=auth("demo-insurer"))
    assert sent.status_code == 200, sent.text
    insurer = client.get("/v1/usage", headers=auth("demo-insurer")).json()
    assert insurer["operator"] == "demo-insurer" and used(insurer) >= 2
    assert "demo-bank" not in str(insurer)
    bank = client.get("/v1/usage", headers=auth()).json()
    assert bank["operator"] == "demo-bank" and "demo-insurer" not in str(bank)
    assert used(bank) == 0  # the insurer's counters are not the bank's
    assert "disclosure_all_operators" not in bank and "operators" not in bank
    # an operator may not read the department's view, nor a department the operator's
    refused = client.get("/v1/admin/usage", headers=auth())
    assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    assert client.get("/v1/usage", headers=auth(**DEPARTMENT)).status_code == 403
    assert client.get("/v1/usage").status_code == 401
