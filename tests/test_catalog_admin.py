"""A department publishes its catalog over HTTP: round trip, reclassification enforced,
new products, operators and licences answering, bad documents named, audited."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable

import httpx
import pytest

from conftest import DATABASES, on_each_database, start_beside, stop_gateway
from dataauth.catalog.document import parse
from dataauth.catalog.publish import digest
from test_audit_log import dataauth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def own_gateway(request, tmp_path_factory):
    """A gateway of its own on each database: publishing here leaves the session's alone."""
    running = start_beside(on_each_database(request), tmp_path_factory.mktemp("catalog"),
                           env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})  # fmt: skip
    yield running
    stop_gateway(running)


@pytest.fixture
def http(own_gateway):
    with httpx.Client(base_url=own_gateway.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def department(gw) -> dict[str, str]:
    return bearer(gw.token("a-department", roles=("department",)))


def domain_url(gw) -> str:
    return gw.env.get("DATAAUTH_DOMAIN_URL") or f"sqlite:///{gw.data_dir}/demo-domain.sqlite"


def eventually(ask: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]):
    """Ask until the answer is the one awaited (the catalog's TTL has passed)."""
    for _ in range(200):
        response = ask()
        if done(response):
            return response
        time.sleep(0.05)
    raise AssertionError(f"still {response.status_code}: {response.text}")


def resident(gw) -> tuple[str, str]:
    with gw.domain_db() as db:
        return db.execute("SELECT resident_id, district FROM residents LIMIT 1").fetchone()


def test_the_catalog_round_trips(own_gateway, http, tmp_path):
    before = http.get("/v1/admin/catalog", headers=department(own_gateway))
    assert before.status_code == 200
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(before.json(), ensure_ascii=False), encoding="utf-8")
    args = ("--data-dir", str(own_gateway.data_dir))
    checked = dataauth("catalog", "check", str(path), "--domain-url", domain_url(own_gateway))
    assert checked.returncode == 0, checked.stderr
    applied = dataauth("catalog", "apply", str(path), "--url", own_gateway.url, *args)
    assert applied.returncode == 0, applied.stderr
    assert digest(parse(before.json())[0]) in applied.stdout
    shown = dataauth("catalog", "show", "--url", own_gateway.url, *args)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == before.json()


def test_a_reclassified_column_is_enforced(own_gateway, http):
    current = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    residents = next(d for d in current["datasets"] if d["id"] == "residents")
    original = copy.deepcopy(residents)
    income = next(c for c in residents["columns"] if c["name"] == "monthly_income")
    income["uses"] = ["aggregate", "feature"]  # no longer compare
    key, _ = resident(own_gateway)
    bank = bearer(own_gateway.token("demo-bank"))

    def ask() -> httpx.Response:
        body = {"purpose": "credit", "subjects": [{"key": key, "claims": {"threshold": 3000}}]}
        return http.post("/v1/verify/income-at-least", json=body, headers=bank)

    assert ask().status_code == 200
    published = http.put("/v1/admin/catalog", json={"datasets": [residents]},
                         headers=department(own_gateway))  # fmt: skip
    assert published.status_code == 200, published.text
    assert published.json()["counts"]["datasets"] == 1
    warned = {w["at"] for w in published.json()["warnings"]}
    assert warned == {"products/income-at-least/spec", "products/income-band/spec"}
    denied = eventually(ask, lambda r: r.status_code == 403)
    assert denied.json()["reasons"][0]["code"] == "column_use_not_allowed"

    restored = http.put("/v1/admin/catalog", json={"datasets": [original]},
                        headers=department(own_gateway))  # fmt: skip
    assert restored.status_code == 200 and restored.json()["warnings"] == []
    eventually(ask, lambda r: r.status_code == 200)


def test_a_new_product_operator_and_licence_answer(own_gateway, http):
    document = {
        "products": [{
            "id": "district-is", "kind": "verify", "title": "户籍区核验 Is the district this?",
            "dataset": "residents",
            "spec": {"checks": [{"column": "district", "op": "eq", "param": "district"}],
                     "parameters": {"district": {"type": "string"}}},
        }],
        "operators": [{"id": "new-lender", "name": "新贷 New Lender", "kind": "lender"}],
        "licences": [{
            "id": "new-lender-licence", "operator_id": "new-lender",
            "products": ["district-is", "identity-match"], "purposes": ["credit"],
            "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2036-01-01T00:00:00+08:00",
            "limits": {"daily_quota": 100},
        }],
    }  # fmt: skip
    published = http.put("/v1/admin/catalog", json=document, headers=department(own_gateway))
    assert published.status_code == 200, published.text
    key, district = resident(own_gateway)
    lender = bearer(own_gateway.token("new-lender"))
    body = {"purpose": "credit", "subjects": [{"key": key, "claims": {"district": district}}]}
    answered = eventually(
        lambda: http.post("/v1/verify/district-is", json=body, headers=lender),
        lambda r: r.status_code == 200,
    )
    assert answered.json()["results"] == [{"index": 0, "result": True}]
    listing = http.get("/v1/products", headers=lender).json()
    assert {p["id"] for p in listing["products"]} == {"district-is", "identity-match"}
    assert listing["licence"]["valid_to"] == "2035-12-31T16:00:00Z"

    shown = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    licence = next(x for x in shown["licences"] if x["id"] == "new-lender-licence")
    assert licence["valid_from"] == "2026-01-01T00:00:00Z"

    document["products"][0]["published"] = False  # unpublished: no longer answered
    assert http.put("/v1/admin/catalog", json={"products": document["products"]},
                    headers=department(own_gateway)).status_code == 200  # fmt: skip
    eventually(
        lambda: http.post("/v1/verify/district-is", json=body, headers=lender),
        lambda r: r.status_code == 404,
    )


def test_a_bad_document_is_refused_item_by_item(own_gateway, http):
    current = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    residents = copy.deepcopy(next(d for d in current["datasets"] if d["id"] == "residents"))
    columns = {c["name"]: c for c in residents["columns"]}
    columns["name"]["level"] = "L9"
    columns["district"]["uses"] = ["compare", "sell"]
    document = {
        "datasets": [
            residents,
            {"id": "vehicles", "title": "机动车 Vehicles", "table": "vehicles",
             "key_column": "plate", "version": "1",
             "columns": [{"name": "plate", "title": "号牌", "type": "string", "level": "L2",
                          "uses": ["key"]}]},
        ],
        "products": [{"id": "height-at-least", "title": "身高", "dataset": "residents",
                      "spec": {"checks": [{"column": "height", "op": "ge", "value": 170}]}}],
        "joins": [dict(current["joins"][0], right_column="name")],
        "licences": [dict(current["licences"][0], products=["no-such-product"])],
    }  # fmt: skip
    refused = http.put("/v1/admin/catalog", json=document, headers=department(own_gateway))
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "catalog_invalid"
    assert {e["at"] for e in problem["errors"]} == {
        "datasets/residents/columns/name/level",
        "datasets/residents/columns/district/uses",
        "datasets/vehicles/table",
        "products/height-at-least/spec",
        "joins/enterprise-representative/right_column",
        f"licences/{current['licences'][0]['id']}/products",
    }
    assert f"{len(problem['errors'])} problems" in problem["detail"]

    for body in ([1, 2], {"datasets": "all"}, {"unknown": []}, None):
        shaped = http.put("/v1/admin/catalog", json=body, headers=department(own_gateway))
        assert shaped.status_code == 422 and shaped.json()["code"] == "catalog_invalid", body
    after = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    assert after == current  # nothing of a refused document is applied


def test_only_a_department_reads_or_publishes(own_gateway, http):
    operator = bearer(own_gateway.token("demo-bank"))
    for method in ("GET", "PUT"):
        assert http.request(method, "/v1/admin/catalog", json={}).status_code == 401
        refused = http.request(method, "/v1/admin/catalog", json={}, headers=operator)
        assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"


def test_a_publication_is_audited_with_its_digest(own_gateway, http):
    current = http.get("/v1/admin/catalog", headers=department(own_gateway)).json()
    operators = {"operators": current["operators"][:1]}
    published = http.put("/v1/admin/catalog", json=operators, headers=department(own_gateway))
    assert published.status_code == 200
    name = published.json()["digest"]
    assert name == digest(parse(operators)[0])
    regulator = bearer(own_gateway.token("cac", roles=("regulator",)))
    entries = http.get("/v1/audit/entries", params={"limit": 1000}, headers=regulator).json()
    entry = entries["entries"][published.json()["audit"]["entry"]]["entry"]
    assert entry["outcome"] == "published" and entry["operator"] == "a-department"
    assert entry["operation"] == {
        "kind": "catalog-publish", "digest": name,
        "counts": {"datasets": 0, "products": 0, "joins": 0, "operators": 1, "licences": 0},
    }  # fmt: skip
