"""schemathesis against the gateway's own OpenAPI document: generated requests, valid and
not, never get a 5xx, and every answer matches the document (status, content type, body).

Run as schemathesis's own command line (``st run``), against a gateway of its own so
generated traffic leaves the session's log and limits alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import start_beside, stop_gateway

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance," \
         "response_schema_conformance"  # fmt: skip


@pytest.fixture(scope="module")
def target(gateway, tmp_path_factory):
    running = start_beside(gateway, tmp_path_factory.mktemp("schema"))
    yield running
    stop_gateway(running)


def schemathesis(target, *args: str) -> subprocess.CompletedProcess[str]:
    # One worker: on Python 3.11 the ast module's recursion counter is shared between threads
    # (CPython gh-106905), and hypothesis parses lambdas' source while it generates, so two
    # worker threads now and then fail with "AST constructor recursion depth mismatch".
    st = Path(sys.executable).parent / "st"
    return subprocess.run(
        [str(st), "run", f"{target.url}/openapi.json", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "30",
         "--suppress-health-check", "all", *args],
        capture_output=True, text=True, timeout=900,
        cwd=target.data_dir,  # its cache of crashes stays out of the repository
    )  # fmt: skip


def test_with_an_operators_token(target):
    """The token takes generated requests past authentication, into the spine."""
    token = target.token("demo-bank")
    result = schemathesis(target, "--header", f"Authorization: Bearer {token}",
                          "--max-examples", "100")  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_without_a_token(target):
    result = schemathesis(target, "--max-examples", "20")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
