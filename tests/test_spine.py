"""The spine, driven with a kind it has never heard of.

The ``echo`` kind below is all a new kind is: one module (its request, ``describe``,
``execute``, ``disclose``, ``disclosures`` and its route), one Rego module that names it
and its obligations, and one line of assembly (here: ``gateway.kinds["echo"] = Echo()``).
Everything else (the decision, the batch limits, the usage and disclosure budgets, the
audit entry before the answer, the receipt) the spine does for it. The gateway is the
real one, on a database of its own, with the shipped policies and a real Rego engine.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import Field
from sqlalchemy import text

from dataauth.accounts.disclosure import Disclosure
from dataauth.app import build_gateway, prepare
from dataauth.catalog.store import OperatorInfo
from dataauth.config import Settings
from dataauth.errors import Problem, unprocessable
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.operations.base import Call, Description, Request, Route
from dataauth.policy.bundle import Bundle, bundle_digest, load_bundle

ECHO_REGO = """
package dataauth

import rego.v1

kinds contains "echo"

kind_obligations["echo"] := {"batch_limit": 2}

deny contains reason("echo_refused", "the echo says no") if {
	input.operation.kind == "echo"
	input.echo.say == "no"
}
"""


class EchoRequest(Request):
    say: str = Field(max_length=16)
    keys: list[str] = Field(default_factory=list)

    def batch(self) -> int:
        return len(self.keys)


class Echo:
    """A trivial kind: it answers what it is told, about the subjects it names."""

    name = "echo"
    route = Route("/v1/echo", EchoRequest, "Say it back.", "echo")

    def __init__(self) -> None:
        self.executed = 0

    def describe(self, call: Call[EchoRequest], operator: OperatorInfo) -> Description:
        if call.body.say == "malformed":
            raise unprocessable("echo_malformed", "the echo cannot say that")
        return Description(
            operation={},
            facts={"echo": {"say": call.body.say}},
            plan=call.body.say,
            subjects=[f"h:{key}" for key in call.body.keys],
        )

    def disclosures(self, plan: str, obligations: dict[str, Any]) -> list[Disclosure]:
        return []

    def execute(self, plan: str, obligations: dict[str, Any]) -> str:
        self.executed += 1
        if plan == "crash":
            raise RuntimeError("the domain fell over")
        if plan == "refuse":
            raise Problem(409, "echo_refused_late", "the echo thought again")
        return plan

    def disclose(self, raw: str, plan: str, obligations: dict[str, Any]) -> dict[str, Any]:
        return {"echo": raw}


@pytest.fixture(scope="module")
def spine(gateway, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A gateway of its own beside the session's, running the echo kind."""
    data = tmp_path_factory.mktemp("spine") / "data"
    data.mkdir()
    shutil.copy(gateway.data_dir / "demo-domain.sqlite", data)
    shutil.copytree(gateway.data_dir / "keys", data / "keys")
    settings = Settings(data_dir=data, demo=True, max_batch=3)
    prepare(settings)
    built, ledger, _ = build_gateway(settings)
    shipped = load_bundle(settings.policies())
    modules = {**shipped.modules, "dataauth/kinds/echo.rego": ECHO_REGO}
    bundle = Bundle(modules, shipped.data, bundle_digest(modules, shipped.data))
    built.policy.publish(bundle, "test")
    built.kinds["echo"] = echo = Echo()  # the one line of assembly
    token = "Bearer " + issue_token(
        Keyring(settings.keys_dir),
        subject="demo-bank",
        issuer=settings.issuer,
        audience=settings.audience,
    )
    return built, ledger, echo, token


def ask(spine: Any, say: str, keys: list[str] = ()) -> dict[str, Any]:
    gateway, _, _, token = spine
    body = EchoRequest(purpose="credit", say=say, keys=list(keys))
    return gateway.handle(token, "echo", Call("echo", body, orjson.dumps(body.model_dump())))


def entry(spine: Any, index: int) -> dict[str, Any]:
    gateway = spine[0]
    with gateway.catalog.engine.connect() as db:
        query = text('SELECT canonical FROM audit_entry WHERE "index" = :i')
        return orjson.loads(db.execute(query, {"i": index}).scalar_one())["entry"]


def refusal(spine: Any, say: str, keys: list[str] = ()) -> Problem:
    with pytest.raises(Problem) as raised:
        ask(spine, say, keys)
    return raised.value


def test_an_allowed_request_is_answered_with_its_entry(spine) -> None:
    answer = ask(spine, "hello", ["a"])
    assert answer["echo"] == "hello"
    logged = entry(spine, answer["audit"]["entry"])
    assert logged["outcome"] == "released"
    assert logged["operation"] == {"kind": "echo"}
    assert logged["subjects"] == ["h:a"]
    assert logged["policy_input"]["echo"] == {"say": "hello"}


def test_a_denial_is_logged_and_the_kind_never_runs(spine) -> None:
    before = spine[2].executed
    problem = refusal(spine, "no")
    assert (problem.status, problem.code) == (403, "policy_denied")
    assert problem.extensions["reasons"][0]["code"] == "echo_refused"
    assert entry(spine, problem.extensions["audit"]["entry"])["outcome"] == "denied"
    assert spine[2].executed == before


def test_the_spine_holds_a_batch_to_the_obliged_limit(spine) -> None:
    before = spine[2].executed
    problem = refusal(spine, "hello", ["a", "b", "c"])
    assert (problem.status, problem.code) == (403, "batch_over_obligation")
    assert entry(spine, problem.extensions["audit"]["entry"])["outcome"] == "refused"
    assert spine[2].executed == before


def test_a_batch_over_the_gateway_ceiling_is_rejected_before_any_decision(spine) -> None:
    problem = refusal(spine, "hello", ["a", "b", "c", "d"])
    assert (problem.status, problem.code) == (413, "batch_too_large")
    logged = entry(spine, problem.extensions["audit"]["entry"])
    assert (logged["outcome"], logged["refusal"]) == ("rejected", "batch_too_large")
    assert logged["decision"] is None


def test_a_malformed_request_is_rejected_on_the_record(spine) -> None:
    problem = refusal(spine, "malformed")
    assert (problem.status, problem.code) == (422, "echo_malformed")
    logged = entry(spine, problem.extensions["audit"]["entry"])
    assert (logged["outcome"], logged["refusal"]) == ("rejected", "echo_malformed")


def test_a_kind_failing_after_the_allow_is_logged_and_answered_without_a_result(spine) -> None:
    problem = refusal(spine, "crash")
    assert (problem.status, problem.code) == (503, "domain_unavailable")
    assert entry(spine, problem.extensions["audit"]["entry"])["outcome"] == "failed"
    problem = refusal(spine, "refuse")
    assert (problem.status, problem.code) == (409, "echo_refused_late")
    assert entry(spine, problem.extensions["audit"]["entry"])["outcome"] == "refused"


def test_an_unknown_kind_is_not_found(spine) -> None:
    gateway, _, _, token = spine
    body = EchoRequest(purpose="credit", say="hello")
    with pytest.raises(Problem) as raised:
        gateway.handle(token, "shout", Call("shout", body))
    assert (raised.value.status, raised.value.code) == (404, "unknown_operation")


def test_the_kind_brings_its_own_route(spine) -> None:
    from dataauth.api.operations import operation_routes, spine_threads

    router, paths = operation_routes([Echo()], spine_threads())
    assert paths == {"/v1/echo": "echo"}
    [route] = router.routes
    assert route.path == "/v1/echo" and route.methods == {"POST"}


def test_the_architecture_page_shows_this_very_kind() -> None:
    """docs/architecture.md shows the echo kind and its Rego module: these, to the letter."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    blocks = [block.split("\n", 1)[1] for block in page.split("```")[1::2]]
    module = inspect.getsource(EchoRequest) + "\n\n" + inspect.getsource(Echo)
    assert module in blocks
    assert ECHO_REGO.lstrip("\n") in blocks


def test_the_kind_module_is_all_there_is(tmp_path: Path) -> None:
    """No other file names the echo kind: the spine and the API make room by themselves."""
    source = Path(__file__).resolve().parent.parent / "src" / "dataauth"
    assert not [p for p in source.rglob("*.py") if '"echo"' in p.read_text(encoding="utf-8")]
