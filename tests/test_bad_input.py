"""Bad input gets a clear 4xx problem, never a 500, and never an echo of what was sent."""

from __future__ import annotations

import json

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


# -- a new user's common mistakes: each a 4xx problem with a stable code and a detail
# that says what to do, never a 500, never HTML ---------------------------------------

VERIFY = {"purpose": "credit", "subjects": [{"key": SECRET_ID, "claims": {"threshold": 3000}}]}


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml", "json"],
)
def test_a_body_not_sent_as_json_says_so(client, auth, content_type):
    """``curl -d '{...}'`` sends its body as a form; without ``-H 'Content-Type:
    application/json'`` the JSON in it is not read as JSON (RFC 9110: 415)."""
    headers = {**auth(), **({"content-type": content_type} if content_type else {})}
    raw = json.dumps(VERIFY).encode()
    response = client.post("/v1/verify/income-at-least", content=raw, headers=headers)
    found = problem(response, 415, "unsupported_media_type")
    assert "application/json" in found["detail"]
    # the same body as JSON is answered: the content type was the only mistake
    as_json = {**auth(), "content-type": "application/json; charset=utf-8"}
    sent = client.post("/v1/verify/income-at-least", content=raw, headers=as_json)
    assert sent.status_code == 200, sent.text


@pytest.mark.parametrize("path", ["/v1/query", "/v1/models", "/v1/admin/policy"])
def test_every_json_route_names_the_media_type_it_takes(client, auth, path):
    response = client.post(path, content=b'{"purpose": "credit"}',
                           headers={**auth(), "content-type": "text/plain"})  # fmt: skip
    assert "application/json" in problem(response, 415, "unsupported_media_type")["detail"]


def test_a_missing_body_says_one_is_needed(client, auth):
    found = problem(client.post("/v1/verify/income-at-least", headers=auth()), 422,
                    "invalid_request")  # fmt: skip
    assert "no body" in found["detail"] and "application/json" in found["detail"]


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"text"', b"null", b"3000"])
def test_a_body_that_is_not_an_object_says_so(client, auth, body):
    response = client.post("/v1/verify/income-at-least", content=body,
                           headers={**auth(), "content-type": "application/json"})  # fmt: skip
    assert "a JSON object" in problem(response, 422, "invalid_request")["detail"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"purpose": "credit", ',  # cut short
        b"\xff\xfe{}",  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser goes
        b'{"purpose": "credit", "n": ' + b"9" * 5000 + b"}",  # an integer of 5000 digits
        b"{'purpose': 'credit'}",  # Python, not JSON
    ],
    ids=["truncated", "not-utf8", "too-deep", "huge-integer", "single-quotes"],
)
def test_malformed_json_of_every_kind_is_a_400(client, auth, content):
    response = client.post("/v1/query", content=content,
                           headers={**auth(), "content-type": "application/json"})  # fmt: skip
    assert problem(response, 400, "malformed_body")["detail"] == "the body is not valid JSON"


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/query", {"purpose": "credit", "sql": 5}, "sql"),
        ("/v1/query", {"purpose": ["credit"], "sql": "SELECT 1"}, "purpose"),
        ("/v1/verify/income-at-least", {"purpose": "credit", "subjects": {"key": "1"}},
         "subjects"),
        ("/v1/models", {"manifest": 1, "onnx": "AA=="}, "manifest"),
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_json_type_is_named(client, auth, path, body, where):
    found = problem(client.post(path, json=body, headers=auth()), 422, "invalid_request")
    assert found["detail"].startswith(f"{where}: ")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/verify/income-at-least", "POST"),
        ("PUT", "/v1/verify/income-at-least", "POST"),
        ("DELETE", "/v1/products", "GET"),
        ("POST", "/v1/products", "GET"),
        ("GET", "/v1/query", "POST"),
        # paths with two routes: the Allow header names both, not the first route's only
        ("DELETE", "/v1/admin/policy", "GET, POST"),
        ("POST", "/v1/admin/catalog", "GET, PUT"),
    ],
)
def test_a_wrong_method_names_the_one_to_use(client, auth, method, path, allowed):
    response = client.request(method, path, headers=auth())
    found = problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed  # RFC 9110 15.5.6: a 405 says which
    assert allowed in found["detail"] and method not in found["detail"].split()


@pytest.mark.parametrize("path", ["/v1/nothing-here", f"/v1/verify/{SECRET_ID}/x", "/v2/query",
                                  "/index.html"])  # fmt: skip
def test_an_unknown_path_points_at_the_docs(client, path):
    assert "/docs" in problem(client.get(path), 404, "not_found")["detail"]
    # a browser asks for HTML first: it gets the problem all the same
    browsing = client.get(path, headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    problem(browsing, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/verify/income-at-least", VERIFY),
        ("POST", "/v1/query", {"purpose": "credit", "sql": "SELECT COUNT(*) FROM residents"}),
        ("GET", "/v1/products", None),
        ("GET", "/v1/models", None),
    ],
)
def test_a_missing_token_says_how_to_send_one(client, method, path, body):
    response = client.request(method, path, json=body)
    found = problem(response, 401, "missing_token")
    assert "Authorization: Bearer" in found["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.jwt", "token"])
def test_a_malformed_token_is_a_401_problem(client, scheme):
    response = client.post("/v1/verify/income-at-least", json=VERIFY,
                           headers={"Authorization": scheme})  # fmt: skip
    assert response.status_code == 401 and response.headers["www-authenticate"]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
