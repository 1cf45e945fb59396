"""Bad input gets a clear 4xx problem, never a 500, and never an echo of what was sent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

SECRET_ID = "440106198001010019"


def problem(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    assert SECRET_ID not in response.text
    return body


def test_malformed_json(client, auth):
    response = client.post(
        "/v1/verify/income-at-least",
        content=b'{"purpose": "credit", ',
        headers={**auth(), "content-type": "application/json"},
    )
    problem(response, 400, "malformed_body")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"purpose": "credit"},
        {"purpose": "credit", "subjects": []},
        {"purpose": "Credit!", "subjects": [{"key": SECRET_ID}]},
        {"purpose": "credit", "subjects": [{"key": ""}]},
        {"purpose": "credit", "subjects": [{"key": SECRET_ID * 4}]},
        {"purpose": "credit", "subjects": "all"},
        {
            "purpose": "credit",
            "subjects": [{"key": SECRET_ID, "claims": {"threshold": {"$gt": 1}}}],
        },
        [1, 2, 3],
        "text",
    ],
)
def test_bodies_off_the_schema(client, auth, body):
    response = client.post("/v1/verify/income-at-least", json=body, headers=auth())
    problem(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({}, "is missing"),
        ({"threshold": "a lot"}, "must be a number"),
        ({"threshold": -5}, "at least"),
        ({"threshold": 1e12}, "at most"),
        ({"threshold": [1, 2]}, "single value"),
        ({"threshold": 3000, "name": "x"}, "not a parameter"),
        ({"threshold": True}, "must be a number"),
        ({"threshold": 4321}, "must be one of 3000, 5000, 8000, 12000, 20000"),
    ],
)
def test_bad_claims_name_the_subject_and_claim(client, auth, claims, why):
    body = {
        "purpose": "credit",
        "subjects": [
            {"key": SECRET_ID, "claims": {"threshold": 3000}},
            {"key": SECRET_ID, "claims": claims},
        ],
    }
    found = problem(
        client.post("/v1/verify/income-at-least", json=body, headers=auth()), 422, "invalid_claim"
    )
    assert found["subject"] == 1 and why in found["detail"]


def test_oversized_body_is_refused_before_parsing(client, auth):
    big = b'{"purpose": "credit", "subjects": [' + b'{"key": "1"},' * 300_000 + b'{"key": "1"}]}'
    response = client.post(
        "/v1/verify/income-at-least",
        content=big,
        headers={**auth(), "content-type": "application/json"},
    )
    problem(response, 413, "body_too_large")


def test_oversized_body_without_content_length(client, auth):
    def chunks():
        yield b'{"purpose": "credit", "subjects": ['
        for _ in range(300):
            yield b'{"key": "1"},' * 1000
        yield b'{"key": "1"}]}'

    response = client.post(
        "/v1/verify/income-at-least",
        content=chunks(),
        headers={**auth(), "content-type": "application/json"},
    )
    problem(response, 413, "body_too_large")


def test_batch_over_the_hard_ceiling(client, auth):
    body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 1}}] * 10_001}
    problem(
        client.post("/v1/verify/income-at-least", json=body, headers=auth()), 413, "batch_too_large"
    )


@pytest.mark.parametrize("product", ["UPPER", "a" * 80, "x;drop", "..%2f.."])
def test_bad_product_ids(client, auth, product):
    response = client.post(
        f"/v1/verify/{product}",
        json={"purpose": "credit", "subjects": [{"key": "1"}]},
        headers=auth(),
    )
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/problem+json"


def test_sql_in_claims_and_keys_is_only_data(client, auth, gateway):
    hostile = "' OR '1'='1"
    body = {
        "purpose": "credit",
        "subjects": [
            {"key": hostile, "claims": {"name": hostile}},
            {"key": "x'); DROP TABLE residents; --", "claims": {"name": "a"}},
        ],
    }
    response = client.post("/v1/verify/identity-match", json=body, headers=auth())
    assert response.status_code == 200
    assert [r["result"] for r in response.json()["results"]] == [False, False]
    with gateway.domain_db() as db:
        assert db.execute("SELECT COUNT(*) FROM residents").fetchone()[0] == 100_000


def test_unknown_route_and_method(client, auth):
    problem(client.get("/v1/nothing-here", headers=auth()), 404, "not_found")
    problem(client.get("/v1/verify/income-at-least", headers=auth()), 405, "method_not_allowed")
