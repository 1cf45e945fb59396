"""A department changes policy: check, what-if on past traffic, publish, enforced, audited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import start_beside, stop_gateway
from test_audit_log import dataauth

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[1] / "policies"


@pytest.fixture(scope="module")
def own_gateway(gateway, tmp_path_factory):
    """A gateway of its own: publishing here leaves the session's policy alone."""
    running = start_beside(gateway, tmp_path_factory.mktemp("policy"),
                           env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})  # fmt: skip
    yield running
    stop_gateway(running)


def lowered(tmp_path: Path, limit: int) -> Path:
    """A copy of the demo bundle with the verification batch limit (and its tests) changed."""
    candidate = tmp_path / f"candidate-{limit}"
    shutil.copytree(POLICIES, candidate)
    limits = candidate / "dataauth" / "limits" / "data.json"
    limits.write_text(limits.read_text().replace('"batch_limit": 1000', f'"batch_limit": {limit}'))
    table = candidate / "tests" / "decision.json"
    table.write_text(
        table.read_text()
        .replace('"batch_limit": 1000', f'"batch_limit": {limit}')
        .replace('"count": 1000}', f'"count": {limit}}}')
        .replace('"count": 1001}', f'"count": {limit + 1}}}')
    )
    return candidate


def ask(http: httpx.Client, token: str, n: int) -> httpx.Response:
    body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}] * n}
    return http.post("/v1/verify/income-at-least", json=body,
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def test_check_and_digest_commands(tmp_path):
    checked = dataauth("policy", "check", str(POLICIES))
    assert checked.returncode == 0 and "0 failed" in checked.stdout
    digest = dataauth("policy", "digest", str(POLICIES)).stdout.strip()
    assert digest.startswith("sha256:") and digest in checked.stdout
    broken = lowered(tmp_path, 2)
    (broken / "tests" / "decision.json").write_text(
        (POLICIES / "tests" / "decision.json").read_text()
    )  # the limit changed, its tests did not
    failed = dataauth("policy", "check", str(broken))
    assert failed.returncode == 1 and "FAIL decision.json" in failed.stdout


def test_whatif_publish_enforce_audit(own_gateway, tmp_path):
    token = own_gateway.token("demo-bank")
    with httpx.Client(base_url=own_gateway.url, timeout=30) as http:
        before = http.get("/healthz").json()["policy_bundle"]
        assert ask(http, token, 1).status_code == 200
        assert ask(http, token, 3).status_code == 200

        candidate = lowered(tmp_path, 2)
        whatif = dataauth("policy", "whatif", str(candidate), "--json", "--data-dir",
                          str(own_gateway.data_dir))  # fmt: skip
        assert whatif.returncode == 0, whatif.stderr
        report = json.loads(whatif.stdout)
        group = next(g for g in report["groups"] if g["product"] == "income-at-least")
        assert group["allow_to_deny"] >= 1 and group["deny_to_allow"] == 0
        assert "over the limit of 2" in group["examples"][0]["reasons"][0]

        published = dataauth("policy", "publish", str(candidate), "--url", own_gateway.url,
                             "--data-dir", str(own_gateway.data_dir))  # fmt: skip
        assert published.returncode == 0, published.stderr
        after = http.get("/healthz").json()["policy_bundle"]
        assert after != before and after in published.stdout

        denied = ask(http, token, 3)
        assert denied.status_code == 403
        assert denied.json()["reasons"][0]["code"] == "batch_too_large"
        assert ask(http, token, 2).status_code == 200

        regulator = {"Authorization": f"Bearer {own_gateway.token('cac', roles=('regulator',))}"}
        listing = http.get("/v1/audit/entries", params={"limit": 1000}, headers=regulator)
        entries = listing.json()["entries"]
        publications = [e["entry"] for e in entries if e["entry"]["outcome"] == "published"]
        assert publications[-1]["operation"] == {
            "kind": "policy-publish", "previous": before, "new": after}  # fmt: skip
        assert publications[-1]["operator"] == "demo-department"

    exported = dataauth("audit", "export", str(tmp_path / "x"), "--data-dir",
                        str(own_gateway.data_dir))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert len(list((tmp_path / "x" / "bundles").glob("*.json"))) == 2  # both bundles, by digest
    replayed = dataauth("audit", "replay", str(tmp_path / "x"))
    assert replayed.returncode == 0 and "policy publications" in replayed.stdout


def test_publishing_needs_a_department_and_a_bundle_that_compiles(own_gateway):
    with httpx.Client(base_url=own_gateway.url) as http:
        content = {"modules": {"dataauth/x.rego": "package dataauth\ndecision := \n"}, "data": {}}

        def publish(token: str | None, body: object) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.post("/v1/admin/policy", json=body, headers=headers)

        assert publish(None, content).status_code == 401
        operator = publish(own_gateway.token("demo-bank"), content)
        assert operator.status_code == 403 and operator.json()["code"] == "not_allowed"
        department = own_gateway.token("a-department", roles=("department",))
        bad = publish(department, content)
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_bundle"
        assert publish(department, {"modules": "x"}).status_code == 422
        assert publish(department, [1, 2]).status_code == 422
