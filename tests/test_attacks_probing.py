"""Probing shows: every refusal of an authenticated operator is an audit entry, before
any decision too, with its code and never its content; a flood of them is throttled.

Before: requests refused before a decision (malformed SQL, invalid claims, oversized
batches, unknown products) left no entry, so an operator's failed probing was invisible
to a regulator. Now each is an entry with outcome ``rejected``; past the per-minute
limit an operator's further refusals are answered 429 and not logged one by one.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text

from conftest import start_beside, stop_gateway

pytestmark = pytest.mark.slow

SECRET = "440115195011083222"
LIMIT = 5


@pytest.fixture(scope="module")
def own(gateway, tmp_path_factory):
    running = start_beside(gateway, tmp_path_factory.mktemp("probing"),
                           env={"DATAAUTH_REJECTIONS_PER_MINUTE": str(LIMIT)})  # fmt: skip
    yield running
    stop_gateway(running)


def entries_since(own, index: int) -> list[dict]:
    with own.gateway_db() as db:
        rows = db.execute(
            text('SELECT canonical FROM audit_entry WHERE "index" >= :n ORDER BY "index"'),
            {"n": index},
        ).all()
    return [json.loads(bytes(row[0]))["entry"] for row in rows]


def size(own) -> int:
    with own.gateway_db() as db:
        return db.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar()


def test_each_kinds_malformed_request_is_an_entry_without_its_content(own):
    bank = {"Authorization": f"Bearer {own.token('demo-bank')}"}
    probes = [
        ("/v1/query", {"purpose": "credit",
                       "sql": f"SELECT COUNT(*) FROM residents WHERE resident_id = '{SECRET}' ("},
         "sql_syntax"),
        ("/v1/verify/identity-match", {"purpose": "credit",
                                       "subjects": [{"key": SECRET, "claims": {"nam": "陈丽"}}]},
         "invalid_claim"),
        ("/v1/verify/no-such-product", {"purpose": "credit", "subjects": [{"key": SECRET}]},
         "unknown_product"),
        ("/v1/models/m-0000000000000000/run", {"purpose": "credit",
                                               "subjects": [{"key": SECRET}]},
         "unknown_model"),
    ]  # fmt: skip
    before = size(own)
    codes = []
    with httpx.Client(base_url=own.url, timeout=30, headers=bank) as client:
        for path, body, code in probes:
            response = client.post(path, json=body)
            assert response.status_code in (404, 422), response.text
            assert response.json()["code"] == code
            assert response.json()["audit"]["entry"] >= before
            codes.append(code)
        anonymous = client.post("/v1/query", json=probes[0][1], headers={"Authorization": ""})
        assert anonymous.status_code == 401
    found = entries_since(own, before)
    assert [(e["outcome"], e.get("refusal")) for e in found] == [("rejected", c) for c in codes]
    assert [e["operation"]["kind"] for e in found] == ["query", "verify", "verify", "model"]
    for entry in found:
        assert entry["operator"] == "demo-bank" and entry["decision"] is None
        assert SECRET not in json.dumps(entry, ensure_ascii=False)
        assert "陈丽" not in json.dumps(entry, ensure_ascii=False)


def test_a_flood_of_refusals_is_throttled_not_logged_one_by_one(own):
    insurer = {"Authorization": f"Bearer {own.token('demo-insurer')}"}
    before = size(own)
    with httpx.Client(base_url=own.url, timeout=30, headers=insurer) as client:
        answers = [client.post("/v1/query", json={"purpose": "underwriting", "sql": "SELEC"})
                   for _ in range(3 * LIMIT)]  # fmt: skip
    codes = [a.json()["code"] for a in answers]
    assert "rejections_limited" in codes
    throttled = next(a for a in answers if a.json()["code"] == "rejections_limited")
    assert throttled.status_code == 429 and "audit" not in throttled.json()
    assert int(throttled.headers["Retry-After"]) <= 60
    logged = [e for e in entries_since(own, before) if e["operator"] == "demo-insurer"]
    minutes = len({a.json().get("resets") for a in answers if a.status_code == 429}) + 1
    assert LIMIT <= len(logged) <= LIMIT * minutes
    assert all(e["outcome"] == "rejected" for e in logged)
