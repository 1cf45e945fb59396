"""The policy bundle: its decision tables, and that every engine failure denies."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataauth.app import engine_factory
from dataauth.config import Settings
from dataauth.policy.bundle import BundleError, load_bundle
from dataauth.policy.cases import check, load_cases
from dataauth.policy.decision import Decision
from dataauth.policy.embedded import EmbeddedEngine
from dataauth.policy.engines import IN_PROCESS
from dataauth.policy.opa import OpaServerEngine
from dataauth.policy.regorus import RegorusEngine

POLICIES = Path(__file__).resolve().parents[1] / "policies"
CASES = load_cases(POLICIES)


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(load_bundle(POLICIES))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_opa(reason: str) -> None:
    if os.environ.get("DATAAUTH_TEST_REQUIRE_OPA") == "1":
        pytest.fail(f"an OPA engine is required here: {reason}")
    pytest.skip(f"OPA-server engine not run: {reason}")


def opa_harness(delay: float = 0.0):
    """The test OPA server (tests/opa_server.py: OPA's Go engine over its REST API), started."""
    try:
        from opa_server import HarnessServer
    except ImportError as exc:
        no_opa(
            f"no `opa` binary on PATH, DATAAUTH_TEST_OPA_URL unset, and OPA's Go engine "
            f"not installed ({exc}; the README's second command installs it)"
        )
    return HarnessServer(delay=delay).start()


@pytest.fixture(scope="session")
def opa_url() -> Iterator[str]:
    """An OPA server: DATAAUTH_TEST_OPA_URL, one started from an ``opa`` binary, or the harness."""
    if os.environ.get("DATAAUTH_TEST_OPA_URL"):
        yield os.environ["DATAAUTH_TEST_OPA_URL"]
        return
    binary = shutil.which("opa")
    if binary is None:
        harness = opa_harness()
        yield harness.url
        harness.stop()
        return
    port = free_port()
    server = subprocess.Popen([binary, "run", "--server", f"--addr=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module", params=[*IN_PROCESS, "opa-server"])
def any_engine(request):
    """Every engine the gateway supports, each given the same decision table."""
    bundle = load_bundle(POLICIES)
    if request.param in IN_PROCESS:
        return IN_PROCESS[request.param](bundle)
    return OpaServerEngine(bundle, request.getfixturevalue("opa_url"), timeout_ms=2000)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(any_engine, case):
    assert check(any_engine, case) is None


def same_form(decision: Decision) -> str:
    """A decision as JSON with its types (1000 is not 1000.0), reasons in a fixed order:
    the engines differ only in the order a set of reasons is listed, as replay allows."""
    value = decision.as_dict() | {"reasons": sorted(decision.reasons, key=str)}
    return json.dumps(value, sort_keys=True)


def test_the_in_process_engines_decide_every_case_alike():
    bundle = load_bundle(POLICIES)
    regopy, regorus = EmbeddedEngine(bundle, memo_size=0), RegorusEngine(bundle, memo_size=0)
    differ = [
        case.name
        for case in CASES
        if same_form(regopy.decide(case.input)) != same_form(regorus.decide(case.input))
    ]
    assert differ == []


@pytest.fixture(scope="module", params=list(IN_PROCESS))
def in_process(request) -> type[EmbeddedEngine] | type[RegorusEngine]:
    return IN_PROCESS[request.param]


def test_false_in_the_input_is_false(in_process, tmp_path):
    # regorus' Python-object conversion reads False as 0, which Rego finds true
    source = 'package dataauth\nimport rego.v1\ndecision := {"allow": true} if input.ok\n'
    engine = in_process(load_bundle(bundle_with(tmp_path, source)))
    assert engine.decide({"ok": False}).reasons[0]["code"] == "policy_undefined"
    assert engine.decide({"ok": True}).allow is True


def test_a_regorus_engine_serves_any_thread():
    engine = RegorusEngine(load_bundle(POLICIES), memo_size=0)
    answers: list[Decision] = []
    worker = threading.Thread(target=lambda: answers.append(engine.decide(CASES[0].input)))
    worker.start()
    worker.join()
    assert answers == [engine.decide(CASES[0].input)] and answers[0].allow is CASES[0].allow


def test_a_head_comprehension_regorus_cannot_schedule_denies(tmp_path):
    # regorus 0.9 fails at evaluation, not compilation, on a comprehension in the head
    # of a rule with a body: the decision is a deny, never an allow
    source = (
        "package dataauth\nimport rego.v1\ndeny contains 1 if input.a\n"
        'decision := {"allow": false, "reasons": [r | some r in deny]} if count(deny) > 0\n'
    )
    decision = RegorusEngine(load_bundle(bundle_with(tmp_path, source))).decide({"a": True})
    assert not decision.allow and decision.reasons[0]["code"] == "policy_error"


def test_an_unreachable_opa_server_denies():
    engine = OpaServerEngine(load_bundle(POLICIES), f"http://127.0.0.1:{free_port()}")
    decision = engine.decide(CASES[0].input)
    assert not decision.allow and decision.reasons[0]["code"] == "policy_unavailable"


@pytest.fixture
def harness() -> Iterator[Callable[..., Any]]:
    """Start test OPA servers of one's own (their faults do not reach the shared one)."""
    started = []

    def start(delay: float = 0.0):
        started.append(opa_harness(delay))
        return started[-1]

    yield start
    for server in started:
        server.stop()


ALLOWED = next(case for case in CASES if case.allow)


def test_an_opa_server_that_goes_down_denies(harness):
    server = harness()
    engine = OpaServerEngine(load_bundle(POLICIES), server.url)
    assert engine.decide(ALLOWED.input).allow
    server.stop()
    decision = engine.decide(ALLOWED.input)
    assert not decision.allow and decision.reasons[0]["code"] == "policy_unavailable"


@pytest.mark.parametrize(("delay", "allow"), [(0.02, True), (0.5, False)])
def test_an_opa_server_slower_than_the_timeout_denies(harness, delay, allow):
    server = harness(delay=delay)
    settings = Settings(policy_engine="opa", opa_url=server.url, policy_timeout_ms=200)
    decision = engine_factory(settings)(load_bundle(POLICIES)).decide(ALLOWED.input)
    assert decision.allow is allow
    if not allow:
        assert decision.reasons[0]["code"] == "policy_timeout"


def test_an_opa_server_error_denies(harness, tmp_path):
    # two complete definitions with different values: OPA answers 500 (eval_conflict_error)
    source = (
        "package dataauth\nimport rego.v1\n"
        'decision := {"allow": true} if input.a\n'
        'decision := {"allow": false} if input.b\n'
    )
    server = harness()
    engine = OpaServerEngine(load_bundle(bundle_with(tmp_path, source)), server.url)
    both = {"a": True, "b": True}
    answer = httpx.post(f"{server.url}/v1/data/dataauth/decision", json={"input": both})
    assert answer.status_code == 500 and "eval_conflict_error" in answer.json()["message"]
    decision = engine.decide(both)
    assert not decision.allow and decision.reasons[0]["code"] == "policy_unavailable"


class Misbehaving(BaseHTTPRequestHandler):
    """An HTTP server that accepts pushes and answers decisions off the contract (or late)."""

    answer = b'{"result": "allow everything"}'
    delay = 0.0

    def do_PUT(self) -> None:
        # as OPA does: 200 with a body for a policy, 204 for data
        self.rfile.read(int(self.headers.get("content-length", 0)))
        data = self.path.startswith("/v1/data")
        self.send_response(204 if data else 200)
        self.end_headers()
        if not data:
            self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(self.delay)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    ("answer", "delay", "code"),
    [
        (b'{"result": "allow everything"}', 0, "policy_malformed"),
        (b"<html>not json</html>", 0, "policy_unavailable"),
        (b"{}", 0, "policy_undefined"),
        (b'{"result": {"allow": true}}', 1.0, "policy_timeout"),
    ],
)
def test_an_opa_server_off_the_contract_denies(answer, delay, code):
    handler = type("Handler", (Misbehaving,), {"answer": answer, "delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        decision = OpaServerEngine(load_bundle(POLICIES), url, timeout_ms=300).decide({})
    finally:
        server.shutdown()
    assert not decision.allow and decision.reasons[0]["code"] == code


def bundle_with(tmp_path: Path, source: str) -> Path:
    (tmp_path / "dataauth").mkdir()
    (tmp_path / "dataauth" / "decision.rego").write_text(source)
    return tmp_path


def test_a_malformed_decision_denies(in_process, tmp_path):
    root = bundle_with(tmp_path, 'package dataauth\ndecision := "yes"\n')
    decision = in_process(load_bundle(root)).decide({})
    assert decision == Decision.deny("policy_malformed", decision.reasons[0]["message"])


def test_an_allow_that_is_not_a_boolean_denies(in_process, tmp_path):
    root = bundle_with(tmp_path, 'package dataauth\ndecision := {"allow": "true"}\n')
    assert in_process(load_bundle(root)).decide({}).allow is False


def test_an_undefined_decision_denies(in_process, tmp_path):
    root = bundle_with(
        tmp_path, 'package dataauth\nimport rego.v1\ndecision := {"allow": true} if input.x\n'
    )
    decision = in_process(load_bundle(root)).decide({})
    assert not decision.allow and decision.reasons[0]["code"] == "policy_undefined"


def test_a_runtime_error_denies(in_process, tmp_path):
    # two complete definitions with different values: an evaluation error in Rego
    source = (
        "package dataauth\nimport rego.v1\n"
        'decision := {"allow": true} if input.a\n'
        'decision := {"allow": false} if input.b\n'
    )
    decision = in_process(load_bundle(bundle_with(tmp_path, source))).decide({"a": True, "b": True})
    assert not decision.allow and decision.reasons[0]["code"] in (
        "policy_error",
        "policy_undefined",
    )


def test_a_slow_decision_denies(in_process, engine):
    slow = in_process(engine.bundle, timeout_ms=1e-6)
    decision = slow.decide(CASES[0].input)
    assert not decision.allow and decision.reasons[0]["code"] == "policy_timeout"


def test_an_input_that_is_not_json_denies(in_process, engine):
    engine = in_process(engine.bundle)
    assert engine.decide({"time": object()}).reasons[0]["code"] == "policy_error"


def test_a_bundle_that_does_not_compile_is_refused(in_process, tmp_path):
    with pytest.raises(BundleError):
        in_process(load_bundle(bundle_with(tmp_path, "package dataauth\ndecision := \n")))


def test_the_digest_is_the_bundle_identity(tmp_path):
    first, second = load_bundle(POLICIES), load_bundle(POLICIES)
    assert first.digest == second.digest and first.digest.startswith("sha256:")

    root = bundle_with(tmp_path, 'package dataauth\ndecision := {"allow": false}\n')
    (root / "dataauth" / "limits").mkdir()
    (root / "dataauth" / "limits" / "data.json").write_text('{"verify": {"batch_limit": 5}}')
    before = load_bundle(root).digest
    (root / "dataauth" / "limits" / "data.json").write_text('{"verify": {"batch_limit": 6}}')
    assert load_bundle(root).digest != before
    assert load_bundle(root).data == {"dataauth": {"limits": {"verify": {"batch_limit": 6}}}}
