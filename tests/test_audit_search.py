"""The log as the console reads it: filtered entries, stored bytes, counts, heads, replay."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest

from conftest import DATABASES, on_each_database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


BODY = {
    "purpose": "credit",
    "subjects": [{"key": "440106199001010011", "claims": {"name": "张三"}}],
}


@pytest.fixture
def regulator(auth):
    return auth("cac-regulator", roles=("regulator",))


@pytest.fixture
def traffic(client, auth):
    """A released answer of demo-bank, one of demo-insurer, and a rejected request."""
    bank = client.post("/v1/verify/identity-match", json=BODY, headers=auth()).json()
    insurer = client.post("/v1/verify/identity-match", json=BODY, headers=auth("demo-insurer"))
    rejected = client.post("/v1/verify/identity-match", json={"purpose": 1}, headers=auth())
    assert rejected.status_code == 422
    return bank["audit"]["entry"], insurer.json()["audit"]["entry"]


def everything(client, headers, **params):
    params = {"limit": 1000, **params}
    found, start = [], 0
    while start is not None:
        page = client.get("/v1/audit/entries", headers=headers, params={**params, "from": start})
        assert page.status_code == 200, page.text
        found += page.json()["entries"]
        start = page.json()["next"]
    return found


def test_entries_filter_by_operator_kind_outcome_and_time(client, auth, regulator, traffic):
    bank, insurer = traffic
    mine = everything(client, regulator, operator="demo-insurer")
    assert mine and {e["entry"]["operator"] for e in mine} == {"demo-insurer"}
    assert insurer in {e["index"] for e in mine}
    kind = everything(client, regulator, kind="verify")
    assert {e["entry"]["operation"]["kind"] for e in kind} == {"verify"}
    rejected = everything(client, regulator, outcome="rejected")
    assert rejected and {e["entry"]["outcome"] for e in rejected} == {"rejected"}
    stamp = next(e for e in kind if e["index"] == insurer)["entry"]["time"]
    since = everything(client, regulator, since=stamp)
    assert min(e["index"] for e in since) == insurer
    until = everything(client, regulator, until=stamp)
    assert bank in {e["index"] for e in until} and max(e["index"] for e in until) < insurer
    # a time in another zone is the same instant
    assert everything(client, regulator, since=stamp.replace("Z", "+00:00")) == since
    for since in ("yesterday", "9999-12-31T23:59:59-23:59"):
        bad = client.get("/v1/audit/entries", headers=regulator, params={"since": since})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_time"
    bad = client.get("/v1/audit/traffic", headers=regulator, params={"operator": "a\x00b"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_filter"


def test_a_filtered_page_says_where_the_next_starts(client, regulator, traffic):
    first = client.get("/v1/audit/entries", headers=regulator,
                       params={"outcome": "released", "limit": 1}).json()  # fmt: skip
    assert len(first["entries"]) == 1 and first["next"] == first["entries"][0]["index"] + 1


def test_an_operator_reads_only_its_own(client, auth, traffic):
    own = everything(client, auth("demo-insurer"))
    assert own and {e["entry"]["operator"] for e in own} == {"demo-insurer"}
    other = client.get("/v1/audit/entries", headers=auth("demo-insurer"),
                       params={"operator": "demo-bank"})  # fmt: skip
    assert other.status_code == 403 and other.json()["code"] == "not_allowed"
    counts = client.get("/v1/audit/traffic", headers=auth("demo-insurer")).json()
    assert counts["total"] == len(own)
    bank, _ = traffic
    assert client.get(f"/v1/audit/entries/{bank}", headers=auth("demo-insurer")).status_code == 404
    assert client.get(f"/v1/audit/entries/{bank}", headers=auth("stranger")).status_code == 403
    assert client.get(f"/v1/audit/entries/{bank}").status_code == 401


def test_stored_bytes_are_what_the_leaf_hash_covers(client, auth, regulator, traffic):
    bank, _ = traffic
    for headers in (regulator, auth()):
        response = client.get(f"/v1/audit/entries/{bank}", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        listed = everything(
            client, regulator, since=orjson.loads(response.content)["entry"]["time"]
        )
        leaf = next(e["leaf_hash"] for e in listed if e["index"] == bank)
        assert hashlib.sha256(b"\x00" + response.content).hexdigest() == leaf
        assert response.content.endswith(b',"index":%d}' % bank)
    missing = client.get("/v1/audit/entries/999999999", headers=regulator)
    assert missing.status_code == 404 and missing.json()["code"] == "no_entry"


def test_traffic_counts_by_kind_and_outcome(client, regulator, traffic):
    counts = client.get("/v1/audit/traffic", headers=regulator).json()
    listed = everything(client, regulator)
    assert counts["total"] == sum(c["count"] for c in counts["by_kind"]) >= len(listed) - 5
    cells = {(c["kind"], c["outcome"]): c["count"] for c in counts["by_kind"]}
    assert cells[("verify", "released")] >= 2
    assert cells[("verify", "rejected")] >= 1
    assert sum(c["count"] for c in counts["by_hour"]) == counts["total"]
    assert all(c["hour"].endswith(":00Z") for c in counts["by_hour"])
    narrowed = client.get("/v1/audit/traffic", headers=regulator,
                          params={"outcome": "rejected", "kind": "verify"}).json()  # fmt: skip
    assert {(c["kind"], c["outcome"]) for c in narrowed["by_kind"]} == {("verify", "rejected")}


def test_tree_heads_newest_first(client, traffic):
    for _ in range(100):
        heads = client.get("/v1/audit/tree-heads", params={"limit": 2}).json()
        if heads["tree_heads"] and heads["tree_heads"][0]["size"] > traffic[1]:
            break
        time.sleep(0.05)
    sizes = [h["size"] for h in heads["tree_heads"]]
    assert sizes == sorted(sizes, reverse=True)
    assert heads["tree_heads"][0] == client.get("/v1/audit/tree-head").json()
    if heads["next"] is not None:
        older = client.get("/v1/audit/tree-heads", params={"before": heads["next"]}).json()
        assert all(h["size"] < sizes[-1] for h in older["tree_heads"])


def test_replay_over_http_is_a_regulators(client, auth, regulator, traffic):
    replay = client.get("/v1/audit/replay", headers=regulator, params={"limit": 500})
    assert replay.status_code == 200
    body = replay.json()
    assert body["counts"]["matched"] >= 1 and body["counts"]["differs"] == 0
    assert body["counts"]["no_bundle"] == 0
    assert sum(body["counts"].values()) == len(body["results"])
    assert {r["verdict"] for r in body["results"]} <= set(body["counts"])
    assert client.get("/v1/audit/replay", headers=auth()).status_code == 403
