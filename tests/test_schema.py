"""schemathesis against the gateway's own OpenAPI document: generated requests, valid and
not, never get a 5xx, and every answer matches the document (status, content type, body)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import start_beside, stop_gateway

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def target(gateway, tmp_path_factory):
    """A gateway of its own: generated traffic leaves the session's log and limits alone."""
    running = start_beside(gateway, tmp_path_factory.mktemp("schema"))
    yield running
    stop_gateway(running)


@pytest.fixture(scope="module")
def api(target):
    return schemathesis.openapi.from_url(f"{target.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_gateway_keeps_to_its_schema(case, target):
    """With an operator's token, so requests reach past authentication into the spine."""
    headers = {"Authorization": f"Bearer {target.token('demo-bank')}"}
    case.call_and_validate(base_url=target.url, headers=headers, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_a_token_too(case, target):
    case.call_and_validate(base_url=target.url, checks=CHECKS)
