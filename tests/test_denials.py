"""Every denial path: a readable reason, a stable code, and an audit entry."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from conftest import start_beside, stop_gateway, zone_at

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


def subject(gateway) -> str:
    with gateway.domain_db() as db:
        return db.execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]


def ask(client, auth, gateway, operator, product="income-at-least", purpose="credit", n=1):
    claims = {"threshold": 3000} if product != "identity-match" else {"name": "张三"}
    body = {"purpose": purpose, "subjects": [{"key": subject(gateway), "claims": claims}] * n}
    return client.post(f"/v1/verify/{product}", json=body, headers=auth(operator))


def assert_denied(response, *codes: str) -> dict:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "policy_denied"
    assert {r["code"] for r in problem["reasons"]} == set(codes)
    assert problem["detail"]  # readable
    assert isinstance(problem["audit"]["entry"], int)
    return problem


def test_product_outside_the_licence(client, auth, gateway):
    problem = assert_denied(
        ask(client, auth, gateway, "demo-insurer", purpose="underwriting"), "product_not_licensed"
    )
    assert "does not cover the product income-at-least" in problem["detail"]


def test_purpose_outside_the_licence(client, auth, gateway):
    assert_denied(
        ask(client, auth, gateway, "demo-bank", purpose="marketing"), "purpose_not_licensed"
    )


def test_expired_licence(client, auth, gateway):
    problem = assert_denied(ask(client, auth, gateway, "demo-expired"), "licence_expired")
    assert "expired" in problem["detail"]


def test_revoked_licence(client, auth, gateway):
    assert_denied(ask(client, auth, gateway, "demo-revoked"), "licence_revoked")


def test_batch_over_the_policy_limit(client, auth, gateway):
    assert_denied(ask(client, auth, gateway, "demo-bank", n=1001), "batch_too_large")


def test_unknown_operator(client, auth, gateway):
    response = ask(client, auth, gateway, "not-an-operator")
    assert response.status_code == 403
    assert response.json()["code"] == "unknown_operator"


def test_unknown_product(client, auth):
    body = {"purpose": "credit", "subjects": [{"key": "x"}]}
    response = client.post("/v1/verify/no-such-product", json=body, headers=auth())
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_product"


def test_denials_are_in_the_audit_log(client, auth, gateway):
    problem = assert_denied(ask(client, auth, gateway, "demo-expired"), "licence_expired")
    with gateway.gateway_db() as db:
        allowed, operator = db.execute(
            text('SELECT allowed, operator_id FROM audit_entry WHERE "index" = :i'),
            {"i": problem["audit"]["entry"]},
        ).one()
    assert (allowed, operator) == (False, "demo-expired")


def test_outside_the_operators_hours(gateway, tmp_path):
    """demo-insurer may ask 07:00 to 23:00, in the department's local time."""
    night = start_beside(gateway, tmp_path, env={"DATAAUTH_TIMEZONE": zone_at(3)})
    try:
        with httpx.Client(base_url=night.url, timeout=30) as client:
            response = ask(client, lambda op: {"Authorization": f"Bearer {night.token(op)}"},
                           night, "demo-insurer", "identity-match", "underwriting")  # fmt: skip
        problem = assert_denied(response, "outside_hours")
        assert "between 07:00 and 23:00" in problem["detail"]
    finally:
        stop_gateway(night)
