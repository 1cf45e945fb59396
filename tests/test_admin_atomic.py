"""No administrative step without its entry: when the audit append fails, the step is
not taken. The fault is real: a trigger in the gateway's own database refuses every
insert into the audit table, on SQLite and on PostgreSQL. Each step then answers
503 ``audit_unavailable``, nothing of it is in force (not in the database, not in the
gateway's memory), and once the trigger is gone the same step goes through with its
entry; the exported log verifies after all of it."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import tenseal as ts
from sqlalchemy import text

from conftest import DATABASES, Running, on_each_database, start_beside, stop_gateway
from dataauth.policy.bundle import load_bundle
from dataauth.sdk.he import GatewayError, HEClient, LinearModel, make_context
from test_audit_log import dataauth
from test_he import FEATURES, PRODUCT
from test_models import EXPIRES, MANIFEST, MODEL
from test_policy_admin import ask, lowered

pytestmark = pytest.mark.slow

FAULT = {
    "sqlite": [
        "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_entry "
        "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION audit_fault() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_entry "
        "FOR EACH ROW EXECUTE FUNCTION audit_fault()",
    ],
}
CLEARED = {
    "sqlite": ["DROP TRIGGER audit_fault"],
    "postgresql": ["DROP TRIGGER audit_fault ON audit_entry", "DROP FUNCTION audit_fault()"],
}


@pytest.fixture(scope="module", params=DATABASES)
def own_gateway(request, tmp_path_factory) -> Iterator[Running]:
    """A gateway of its own on each database: its log is the one made to fail."""
    running = start_beside(on_each_database(request), tmp_path_factory.mktemp("atomic"),
                           env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})  # fmt: skip
    yield running
    stop_gateway(running)


@pytest.fixture
def http(own_gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_gateway.url, timeout=60) as client:
        yield client


@contextmanager
def appends_failing(gateway: Running) -> Iterator[None]:
    """Every insert into the audit table fails while inside."""
    dialect = "postgresql" if gateway.on_postgres else "sqlite"
    with gateway.gateway_db() as db:
        for statement in FAULT[dialect]:
            db.execute(text(statement))
        db.commit()
    try:
        yield
    finally:
        with gateway.gateway_db() as db:
            for statement in CLEARED[dialect]:
                db.execute(text(statement))
            db.commit()


def entries(gateway: Running, http: httpx.Client, kind: str) -> list[dict]:
    regulator = {"Authorization": f"Bearer {gateway.token('cac', roles=('regulator',))}"}
    found, start = [], 0
    while start is not None:
        page = http.get("/v1/audit/entries", params={"from": start, "limit": 1000},
                        headers=regulator).json()  # fmt: skip
        found += [e["entry"] | {"index": e["index"]} for e in page["entries"]
                  if e["entry"]["operation"]["kind"] == kind]  # fmt: skip
        start = page["next"]
    return found


def not_logged(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "audit_unavailable"


def logged(gateway: Running, http: httpx.Client, response: httpx.Response, kind: str) -> dict:
    """The entry the step's receipt names, of ``kind``."""
    index = response.json()["audit"]["entry"]
    entry = next(e for e in entries(gateway, http, kind) if e["index"] == index)
    return entry


def department(gateway: Running) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.token('a-department', roles=('department',))}"}


def test_a_policy_publication_without_its_entry_is_not_in_force(own_gateway, http, tmp_path):
    bank = own_gateway.token("demo-bank")
    before = http.get("/healthz").json()["policy_bundle"]
    bundle = load_bundle(lowered(tmp_path, 2))
    content = {"modules": bundle.modules, "data": bundle.data}
    published_before = len(entries(own_gateway, http, "policy-publish"))
    with appends_failing(own_gateway):
        not_logged(http.post("/v1/admin/policy", json=content, headers=department(own_gateway)))
        assert http.get("/healthz").json()["policy_bundle"] == before  # this worker's memory
    with own_gateway.gateway_db() as db:
        newest = db.execute(
            text("SELECT digest FROM policy_publication ORDER BY seq DESC LIMIT 1")
        ).scalar()
    assert newest == before
    assert ask(http, bank, 3).status_code == 200  # the old policy still decides
    assert len(entries(own_gateway, http, "policy-publish")) == published_before

    published = http.post("/v1/admin/policy", json=content, headers=department(own_gateway))
    assert published.status_code == 200, published.text
    assert published.json()["previous"] == before
    entry = logged(own_gateway, http, published, "policy-publish")
    assert entry["operation"]["new"] == bundle.digest and entry["policy_bundle"] == bundle.digest
    assert ask(http, bank, 3).status_code == 403  # this worker adopted it on the commit


def test_a_catalog_publication_without_its_entry_is_not_in_force(own_gateway, http):
    current = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    residents = next(d for d in current["datasets"] if d["id"] == "residents")
    changed = copy.deepcopy(residents)
    income = next(c for c in changed["columns"] if c["name"] == "monthly_income")
    assert income["level"] == "L3"
    income["level"] = "L4"
    income["uses"] = ["aggregate", "feature"]  # no longer compare
    with own_gateway.domain_db() as db:
        key = db.execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]
    bank = {"Authorization": f"Bearer {own_gateway.token('demo-bank')}"}
    body = {"purpose": "credit", "subjects": [{"key": key, "claims": {"threshold": 3000}}]}

    with appends_failing(own_gateway):
        not_logged(http.put("/v1/admin/catalog", json={"datasets": [changed]},
                            headers=department(own_gateway)))  # fmt: skip
    shown = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    assert shown == current  # the level unchanged, and everything else
    assert http.post("/v1/verify/income-at-least", json=body, headers=bank).status_code == 200

    published = http.put("/v1/admin/catalog", json={"datasets": [changed]},
                         headers=department(own_gateway))  # fmt: skip
    assert published.status_code == 200, published.text
    logged(own_gateway, http, published, "catalog-publish")
    shown = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    levels = {c["name"]: c["level"] for d in shown["datasets"] if d["id"] == "residents"
              for c in d["columns"]}  # fmt: skip
    assert levels["monthly_income"] == "L4"
    # this worker refreshed its catalog on the commit: enforced at once
    denied = http.post("/v1/verify/income-at-least", json=body, headers=bank)
    assert denied.status_code == 403, denied.text

    restored = http.put("/v1/admin/catalog", json={"datasets": [residents]},
                        headers=department(own_gateway))  # fmt: skip
    assert restored.status_code == 200, restored.text


def test_a_model_review_without_its_entry_is_not_taken(own_gateway, http):
    bank = {"Authorization": f"Bearer {own_gateway.token('demo-bank')}"}
    body = {"manifest": MANIFEST, "onnx": base64.b64encode(MODEL).decode()}
    with appends_failing(own_gateway):
        not_logged(http.post("/v1/models", json=body, headers=bank))
    assert http.get("/v1/models", headers=bank).json()["models"] == []  # not even pending

    submitted = http.post("/v1/models", json=body, headers=bank)
    assert submitted.status_code in (200, 201), submitted.text
    model_id = submitted.json()["id"]
    approval = {"expires": EXPIRES}
    with appends_failing(own_gateway):
        not_logged(http.post(f"/v1/models/{model_id}/approve", json=approval,
                             headers=department(own_gateway)))  # fmt: skip
    assert http.get(f"/v1/models/{model_id}", headers=bank).json()["status"] == "pending"

    approved = http.post(f"/v1/models/{model_id}/approve", json=approval,
                         headers=department(own_gateway))  # fmt: skip
    assert approved.status_code == 200, approved.text
    entry = logged(own_gateway, http, approved, "model-review")
    assert entry["operation"]["model"] == model_id and entry["outcome"] == "approved"

    with appends_failing(own_gateway):
        not_logged(http.post(f"/v1/models/{model_id}/revoke", json={"reason": "a test"},
                             headers=department(own_gateway)))  # fmt: skip
    assert http.get(f"/v1/models/{model_id}", headers=bank).json()["status"] == "approved"
    revoked = http.post(f"/v1/models/{model_id}/revoke", json={"reason": "a test"},
                        headers=department(own_gateway))  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert logged(own_gateway, http, revoked, "model-review")["outcome"] == "revoked"


@pytest.fixture(scope="module")
def secret() -> ts.Context:
    return make_context()


def test_an_he_filing_without_its_entry_is_absent(own_gateway, http, secret):
    model = LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0)
    regulator = HEClient(own_gateway.url, own_gateway.token("cac", roles=("regulator",)))
    with HEClient(own_gateway.url, own_gateway.token("demo-bank")) as bank, regulator:
        with appends_failing(own_gateway), pytest.raises(GatewayError) as refused:
            bank.register_context(secret)
        assert refused.value.status == 503
        assert refused.value.problem["code"] == "audit_unavailable"
        with own_gateway.gateway_db() as db:
            assert db.execute(text("SELECT COUNT(*) FROM he_context")).scalar() == 0

        context_id = bank.register_context(secret)
        with appends_failing(own_gateway), pytest.raises(GatewayError) as refused:
            bank.register_model(PRODUCT, context_id, model, secret)
        assert refused.value.status == 503
        assert refused.value.problem["code"] == "audit_unavailable"
        with own_gateway.gateway_db() as db:
            assert db.execute(text("SELECT COUNT(*) FROM he_model")).scalar() == 0
            assert db.execute(text("SELECT COUNT(*) FROM he_model_weight")).scalar() == 0

        model_id = bank.register_model(PRODUCT, context_id, model, secret)
        assert regulator.filing(model_id)["id"] == model_id
    assert [e["operation"]["id"] for e in entries(own_gateway, http, "he-score-model")] == [
        model_id
    ]
    assert [e["operation"]["id"] for e in entries(own_gateway, http, "he-score-context")] == [
        context_id
    ]


def test_the_log_verifies_after_all_of_it(own_gateway, tmp_path):
    exported = own_gateway.cli("audit", "export", str(tmp_path / "log"))
    assert exported.returncode == 0, exported.stderr
    verified = dataauth("audit", "verify", str(tmp_path / "log"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified: entries [0," in verified.stdout
