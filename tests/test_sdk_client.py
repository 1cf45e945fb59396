"""The SDK's client against a real gateway: answers, problems, no answer."""

from __future__ import annotations

import httpx
import pytest

from dataauth.sdk import Client, GatewayError, GatewayUnreachable, he


@pytest.fixture
def department(gateway):
    token = gateway.token("demo-department", roles=("department",))
    with Client(gateway.url, token) as client:
        yield client


def test_health_needs_no_token(gateway):
    with Client(gateway.url) as client:
        assert client.health()["policy_bundle"].startswith("sha256:")


def test_answers_are_the_routes_json(department):
    assert isinstance(department.models(), list)
    assert department.models(status="pending") == [
        m for m in department.models() if m["status"] == "pending"
    ]
    assert department.catalog()["datasets"]


def test_a_problem_carries_status_code_detail_and_errors(department):
    with pytest.raises(GatewayError) as refused:
        department.model("m-bad")
    problem = refused.value
    assert (problem.status, problem.code) == (422, "invalid_request")
    assert problem.detail and problem.errors[0]["loc"] == ["path", "model"]
    with pytest.raises(GatewayError) as unknown:
        department.model("m-0000000000000000")
    assert unknown.value.status == 404 and unknown.value.errors == []


def test_a_refused_token_is_a_problem_too(gateway):
    with Client(gateway.url, "not-a-token") as client, pytest.raises(GatewayError) as refused:
        client.models()
    assert refused.value.status == 401 and refused.value.code == "malformed_token"


def test_no_answer_is_gateway_unreachable_and_still_an_httpx_error():
    with (
        Client("http://127.0.0.1:9", timeout=2) as client,
        pytest.raises(GatewayUnreachable) as down,
    ):
        client.health()
    assert isinstance(down.value, httpx.HTTPError)
    assert isinstance(down.value.cause, httpx.ConnectError)
    assert down.value.url == "http://127.0.0.1:9"


def test_the_he_client_is_the_client_with_the_same_error():
    assert issubclass(he.HEClient, Client) and he.GatewayError is GatewayError
