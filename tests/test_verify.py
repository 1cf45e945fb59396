"""Verification answers over HTTP, checked against the department's own data."""

from __future__ import annotations

import random

import pytest

from dataauth.demo.data import national_id_check_digit

pytestmark = pytest.mark.slow

BAND_CUTS = (3000, 8000, 20000)
BAND_LABELS = ("below 3000", "3000 to 7999", "8000 to 19999", "20000 or more")


def residents(gateway, n: int = 300):
    with gateway.domain_db() as db:
        return db.execute(
            "SELECT resident_id, name, monthly_income, social_insurance_months FROM residents "
            "ORDER BY resident_id LIMIT ?",
            (n,),
        ).fetchall()


def absent_id(gateway) -> str:
    """A well-formed national ID number that is not in the register."""
    with gateway.domain_db() as db:
        for serial in range(1000):
            first17 = f"44010619000101{serial:03d}"
            candidate = first17 + national_id_check_digit(first17)
            found = db.execute("SELECT 1 FROM residents WHERE resident_id = ?", (candidate,))
            if found.fetchone() is None:
                return candidate
    raise AssertionError("no free ID found")


def verify(client, auth, product, subjects, operator="demo-bank", purpose="credit"):
    body = {"purpose": purpose, "subjects": subjects}
    return client.post(f"/v1/verify/{product}", json=body, headers=auth(operator))


def test_identity_match_true_false_and_unknown_look_alike(client, auth, gateway):
    (rid, name, *_), (_, other_name, *_) = residents(gateway, 2)
    subjects = [
        {"key": rid, "claims": {"name": name}},
        {"key": rid, "claims": {"name": other_name}},
        {"key": absent_id(gateway), "claims": {"name": name}},
    ]
    response = verify(client, auth, "identity-match", subjects)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [
        {"index": 0, "result": True},
        {"index": 1, "result": False},
        {"index": 2, "result": False},  # an unknown subject reads exactly as a mismatch
    ]
    assert set(body) == {"product", "results", "audit"}


INCOME_CUTS = [3000, 5000, 8000, 12000, 20000]
MONTH_CUTS = [6, 12, 24, 36, 60, 120, 180]


def test_income_threshold_matches_the_register(client, auth, gateway):
    rng = random.Random(7)
    rows = residents(gateway, 400)
    subjects, expected = [], []
    for rid, _, income, _ in rows:
        threshold = rng.choice(INCOME_CUTS)
        subjects.append({"key": rid, "claims": {"threshold": threshold}})
        expected.append(income >= threshold)
    response = verify(client, auth, "income-at-least", subjects)
    assert response.status_code == 200, response.text
    assert [r["result"] for r in response.json()["results"]] == expected
    assert [r["index"] for r in response.json()["results"]] == list(range(len(rows)))


def test_social_insurance_months(client, auth, gateway):
    rows = residents(gateway, 50)
    cuts = [MONTH_CUTS[i % len(MONTH_CUTS)] for i in range(len(rows))]
    subjects = [{"key": r[0], "claims": {"threshold": c}} for r, c in zip(rows, cuts, strict=True)]
    response = verify(
        client, auth, "social-insurance-at-least", subjects, "demo-insurer", "underwriting"
    )
    assert response.status_code == 200, response.text
    expected = [r[3] >= c for r, c in zip(rows, cuts, strict=True)]
    assert [r["result"] for r in response.json()["results"]] == expected


def test_income_band_gives_a_band_never_the_income(client, auth, gateway):
    from dataauth.identity.consent import issue_consent

    rows = residents(gateway, 100)
    unknown = absent_id(gateway)
    hasher = gateway.keyring.subject_hasher()

    def consented(key: str) -> dict:
        token = issue_consent(gateway.keyring, issuer="dataauth-consent-dev",
                              subject_hash=hasher("residents", key), operator="demo-bank",
                              purpose="credit", products=["income-band"])  # fmt: skip
        return {"key": key, "consent": token}

    response = verify(
        client, auth, "income-band", [consented(r[0]) for r in rows] + [consented(unknown)]
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for (_, _, income, _), result in zip(rows, results, strict=False):
        band = sum(income >= cut for cut in BAND_CUTS)
        assert result["result"] == BAND_LABELS[band]
    assert results[-1] == {"index": len(rows), "result": None, "not_found": True}


def test_enterprise_active(client, auth, gateway):
    with gateway.domain_db() as db:
        rows = db.execute("SELECT credit_code, status FROM enterprises LIMIT 200").fetchall()
    subjects = [{"key": code} for code, _ in rows] + [{"key": "91440101MA00000000"}]
    response = verify(client, auth, "enterprise-active", subjects)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["result"] for r in results[:-1]] == [s in ("存续", "在业") for _, s in rows]
    assert any(r["result"] is False for r in results[:-1])  # the sample holds inactive ones
    assert results[-1]["not_found"] is True


def test_a_batch_of_a_thousand_is_one_request(client, auth, gateway):
    rows = residents(gateway, 1000)
    subjects = [{"key": r[0], "claims": {"threshold": 5000}} for r in rows]
    response = verify(client, auth, "income-at-least", subjects)
    assert response.status_code == 200, response.text
    assert [r["result"] for r in response.json()["results"]] == [r[2] >= 5000 for r in rows]


def test_no_response_carries_a_stored_value(client, auth, gateway):
    rows = residents(gateway, 30)
    subjects = [{"key": rid, "claims": {"name": "张三"}} for rid, *_ in rows]
    response = verify(client, auth, "identity-match", subjects)
    assert response.status_code == 200
    for _, name, *_ in rows:
        assert name not in response.text
    for result in response.json()["results"]:
        assert set(result) == {"index", "result"} and isinstance(result["result"], bool)


def test_products_listing_follows_the_licence(client, auth):
    bank = client.get("/v1/products", headers=auth("demo-bank")).json()
    insurer = client.get("/v1/products", headers=auth("demo-insurer")).json()
    assert {p["id"] for p in insurer["products"]} == {"identity-match", "social-insurance-at-least"}
    assert {"identity-match", "income-at-least", "enterprise-active"} <= {
        p["id"] for p in bank["products"]
    }
    income = next(p for p in bank["products"] if p["id"] == "income-at-least")
    assert income["parameters"]["threshold"]["type"] == "number"
    assert bank["licence"]["status"] == "active"
    expired = client.get("/v1/products", headers=auth("demo-expired")).json()
    assert expired["licence"]["status"] == "expired"
