"""The policy bundle: its decision tables, and that every engine failure denies."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataauth.policy.bundle import BundleError, load_bundle
from dataauth.policy.cases import check, load_cases
from dataauth.policy.decision import Decision
from dataauth.policy.embedded import EmbeddedEngine

POLICIES = Path(__file__).resolve().parents[1] / "policies"
CASES = load_cases(POLICIES)


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(load_bundle(POLICIES))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(engine, case):
    assert check(engine, case) is None


def bundle_with(tmp_path: Path, source: str) -> Path:
    (tmp_path / "dataauth").mkdir()
    (tmp_path / "dataauth" / "decision.rego").write_text(source)
    return tmp_path


def test_a_malformed_decision_denies(tmp_path):
    root = bundle_with(tmp_path, 'package dataauth\ndecision := "yes"\n')
    decision = EmbeddedEngine(load_bundle(root)).decide({})
    assert decision == Decision.deny("policy_malformed", decision.reasons[0]["message"])


def test_an_allow_that_is_not_a_boolean_denies(tmp_path):
    root = bundle_with(tmp_path, 'package dataauth\ndecision := {"allow": "true"}\n')
    assert EmbeddedEngine(load_bundle(root)).decide({}).allow is False


def test_an_undefined_decision_denies(tmp_path):
    root = bundle_with(
        tmp_path, 'package dataauth\nimport rego.v1\ndecision := {"allow": true} if input.x\n'
    )
    decision = EmbeddedEngine(load_bundle(root)).decide({})
    assert not decision.allow and decision.reasons[0]["code"] == "policy_undefined"


def test_a_runtime_error_denies(tmp_path):
    # two complete definitions with different values: an evaluation error in Rego
    source = (
        "package dataauth\nimport rego.v1\n"
        'decision := {"allow": true} if input.a\n'
        'decision := {"allow": false} if input.b\n'
    )
    decision = EmbeddedEngine(load_bundle(bundle_with(tmp_path, source))).decide(
        {"a": True, "b": True}
    )
    assert not decision.allow and decision.reasons[0]["code"] in (
        "policy_error",
        "policy_undefined",
    )


def test_a_slow_decision_denies(engine):
    slow = EmbeddedEngine(engine.bundle, timeout_ms=1e-6)
    decision = slow.decide(CASES[0].input)
    assert not decision.allow and decision.reasons[0]["code"] == "policy_timeout"


def test_an_input_that_is_not_json_denies(engine):
    assert engine.decide({"time": object()}).reasons[0]["code"] == "policy_error"


def test_a_bundle_that_does_not_compile_is_refused(tmp_path):
    with pytest.raises(BundleError):
        EmbeddedEngine(load_bundle(bundle_with(tmp_path, "package dataauth\ndecision := \n")))


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
