"""The routes the console needs beside the rest of the API: who a token is, the bundle in
force and a candidate's what-if over HTTP, and the demo's identities (--demo only)."""

from __future__ import annotations

import copy
import shutil

import httpx
import pytest

from conftest import Running, start_gateway, stop_gateway

DEPARTMENT = {"operator": "demo-department", "roles": ("department",)}


def test_me_names_the_token_and_its_operator(client, auth) -> None:
    bank = client.get("/v1/me", headers=auth()).json()
    assert bank["subject"] == "demo-bank" and bank["operator"]["id"] == "demo-bank"
    department = client.get("/v1/me", headers=auth(**DEPARTMENT)).json()
    assert department == {"subject": "demo-department", "roles": ["department"], "operator": None}
    refused = client.get("/v1/me", headers={"Authorization": "Bearer x.y.z"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


def test_the_bundle_in_force_and_a_candidates_whatif(client, auth) -> None:
    assert client.get("/v1/admin/policy/bundle", headers=auth()).status_code == 403
    bundle = client.get("/v1/admin/policy/bundle", headers=auth(**DEPARTMENT)).json()
    assert bundle["digest"] == client.get("/v1/admin/policy").json()["digest"]
    assert any(path.endswith("decision.rego") for path in bundle["modules"])
    content = {"modules": bundle["modules"], "data": bundle["data"]}
    same = client.post("/v1/admin/policy/whatif", json=content, headers=auth(**DEPARTMENT))
    assert same.status_code == 200, same.text
    assert same.json()["changed"] == 0 and same.json()["candidate"] == bundle["digest"]
    # a candidate that licenses nothing turns every recorded allow into a deny
    closed = copy.deepcopy(content)
    closed["modules"]["dataauth/closed.rego"] = (
        'package dataauth\n\nimport rego.v1\n\ndeny contains reason("closed", "closed") if true\n'
    )
    # make sure there is an allow on record
    body = {"purpose": "credit",
            "subjects": [{"key": "440115195011083222", "claims": {"threshold": 3000}}]}  # fmt: skip
    assert client.post("/v1/verify/income-at-least", json=body, headers=auth()).status_code == 200
    report = client.post("/v1/admin/policy/whatif", json=closed, headers=auth(**DEPARTMENT)).json()
    assert report["changed"] >= 1
    assert sum(g["allow_to_deny"] for g in report["groups"]) == report["changed"]
    # what-if is a dry run: the bundle in force is unchanged
    assert client.get("/v1/admin/policy").json()["digest"] == bundle["digest"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ({"modules": {}}, "invalid_bundle"),
        ({"modules": {"a.rego": 1}}, "invalid_bundle"),
        ({"modules": {"a.rego": "package"}}, "invalid_bundle"),
    ],
)
def test_a_bad_candidate_is_a_problem(client, auth, content, code) -> None:
    answer = client.post("/v1/admin/policy/whatif", json=content, headers=auth(**DEPARTMENT))
    assert answer.status_code == 422 and answer.json()["code"] == code
    assert client.post("/v1/admin/policy/whatif", json=content, headers=auth()).status_code == 403


def test_demo_identities_sign_in_as_their_role(client) -> None:
    listed = client.get("/v1/demo/identities").json()["identities"]
    subjects = {i["subject"]: i["roles"] for i in listed}
    assert subjects["demo-department"] == ["department"]
    assert subjects["cac-regulator"] == ["regulator"]
    assert subjects["demo-bank"] == ["operator"]
    issued = client.post("/v1/demo/tokens", json={"subject": "demo-department"}).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/v1/me", headers=headers).json()["roles"] == ["department"]
    unknown = client.post("/v1/demo/tokens", json={"subject": "root"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_identity"


def test_no_demo_identities_outside_the_demo(gateway: Running, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(gateway.data_dir / "demo-domain.sqlite", data)
    running = start_gateway(data, "--development-issuers")
    try:
        listed = httpx.get(f"{running.url}/v1/demo/identities")
        issued = httpx.post(f"{running.url}/v1/demo/tokens", json={"subject": "demo-bank"})
        for answer in (listed, issued):
            assert answer.status_code == 404 and answer.json()["code"] == "not_demo"
        assert httpx.get(f"{running.url}/console").status_code == 200  # the console still is
    finally:
        stop_gateway(running)
