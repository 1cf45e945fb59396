"""Every request is in the audit log before its answer leaves, and the log holds no raw data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import rfc8785
from sqlalchemy import text

from conftest import DATABASES, on_each_database, stop_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


def entry(gateway, index):
    with gateway.gateway_db() as db:
        return db.execute(
            text('SELECT canonical, leaf_hash, allowed FROM audit_entry WHERE "index" = :i'),
            {"i": index},
        ).one()


def test_an_answer_has_its_entry_committed(client, auth, gateway):
    with gateway.domain_db() as db:
        rid, name = db.execute("SELECT resident_id, name FROM residents LIMIT 1").fetchone()
    body = {"purpose": "credit", "subjects": [{"key": rid, "claims": {"name": name}}]}
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = client.post("/v1/verify/identity-match", content=raw,
                           headers={**auth(), "content-type": "application/json"})  # fmt: skip
    assert response.status_code == 200
    receipt = response.json()["audit"]

    canonical, leaf, allowed = entry(gateway, receipt["entry"])
    assert allowed == 1
    assert leaf.hex() == receipt["leaf_hash"] == hashlib.sha256(b"\x00" + canonical).hexdigest()
    leaf = json.loads(canonical)
    assert rfc8785.dumps(leaf) == canonical  # stored canonical (RFC 8785)
    assert leaf["index"] == receipt["entry"]  # the leaf binds its own position
    record = leaf["entry"]
    assert record["outcome"] == "released"
    assert record["operator"] == "demo-bank" and record["purpose"] == "credit"
    assert record["decision"]["allow"] is True
    assert record["policy_bundle"] == client.get("/healthz").json()["policy_bundle"]
    assert record["dataset_version"].startswith("residents@")
    assert record["policy_input"]["subjects"] == {"count": 1}

    # no raw identifier or value in the entry; the subject stands as a keyed hash
    assert rid.encode() not in canonical and name.encode() not in canonical
    assert record["subjects"] == [gateway.keyring.subject_hasher()("residents", rid)]

    # the operator can prove what it sent and got, with the nonce only it received
    nonce = bytes.fromhex(receipt["nonce"])
    sent = b"verify identity-match\n" + raw  # the very bytes sent, with what they asked
    assert record["request_digest"] == "sha256:" + hashlib.sha256(nonce + sent).hexdigest()
    answer = {k: v for k, v in response.json().items() if k != "audit"}
    got = rfc8785.dumps(answer)
    assert record["result_digest"] == "sha256:" + hashlib.sha256(nonce + got).hexdigest()


def test_indexes_are_consecutive_from_zero(client, auth, gateway):
    for operator in ("demo-bank", "demo-expired", "demo-insurer"):
        client.post(
            "/v1/verify/income-at-least",
            headers=auth(operator),
            json={"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}]},
        )
    with gateway.gateway_db() as db:
        indexes = [row[0] for row in db.execute(text('SELECT "index" FROM audit_entry ORDER BY 1'))]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 3


def test_an_operators_bad_input_is_an_entry_without_its_content(client, auth, gateway):
    """Probing shows: an operator's malformed request is a "rejected" entry naming its
    code and committing to its bytes, never holding them; a request without a valid token
    is no entry (an unauthenticated party must not grow the log)."""
    with gateway.gateway_db() as db:
        before = db.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar()
    secret = "440115195011083222"
    broken = b'{"x": "' + secret.encode() + b'"'
    malformed = client.post("/v1/verify/income-at-least", content=broken,
                            headers={**auth(), "Content-Type": "application/json"})  # fmt: skip
    invalid = client.post("/v1/verify/income-at-least", headers=auth(),
                          json={"purpose": "credit", "subjects": [{"key": secret,
                                "claims": {"threshold": 4321}}]})  # fmt: skip
    client.post("/v1/verify/income-at-least", json={"purpose": "credit"}, headers={})
    assert malformed.status_code == 400 and invalid.status_code == 422
    assert malformed.json()["audit"]["entry"] == before
    assert invalid.json()["audit"]["entry"] == before + 1
    with gateway.gateway_db() as db:
        assert db.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar() == before + 2
        rows = db.execute(
            text('SELECT canonical FROM audit_entry WHERE "index" >= :n ORDER BY 1'), {"n": before}
        ).all()
    entries = [json.loads(bytes(row[0]))["entry"] for row in rows]
    assert [(e["outcome"], e["refusal"]) for e in entries] == [
        ("rejected", "malformed_body"),
        ("rejected", "invalid_claim"),
    ]
    assert all(e["decision"] is None and e["operator"] == "demo-bank" for e in entries)
    for row in rows:
        assert secret.encode() not in bytes(row[0])
    # the threshold as a value anywhere in the entries (its digits alone may well turn up
    # inside a hex digest or a nonce, so the bytes are no test of it)
    assert 4321 not in list(_values(entries))


def _values(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)
    else:
        yield value


def audit_count(gateway) -> int:
    with gateway.gateway_db() as db:
        return db.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar()


def oversized():
    """A body of some 3.9 MB, over the 2 MiB limit, in chunks: no Content-Length."""
    yield b'{"purpose": "credit", "subjects": ['
    for _ in range(300):
        yield b'{"key": "1"},' * 1000
    yield b'{"key": "1"}]}'


@pytest.mark.parametrize(
    ("sent", "status", "code", "committed"),
    [
        # a body not sent as JSON: committed to as it came, like any malformed body
        ({"content": b'{"purpose": "credit"}', "headers": {"content-type": "text/plain"}},
         415, "unsupported_media_type", b'{"purpose": "credit"}'),
        ({"content": b'{"purpose": "credit"}'}, 415, "unsupported_media_type",
         b'{"purpose": "credit"}'),
        # JSON past the parser's nesting depth
        ({"content": b"[" * 100_000 + b"]" * 100_000,
          "headers": {"content-type": "application/json"}},
         400, "malformed_body", b"[" * 100_000 + b"]" * 100_000),
        # an oversized body is not taken in: the entry commits to the request line alone,
        # whether the body declared its length or streamed past the limit
        ({"content": b"[" + b"1," * 1_100_000 + b"1]",
          "headers": {"content-type": "application/json"}}, 413, "body_too_large", b""),
        ({"content": oversized, "headers": {"content-type": "application/json"}},
         413, "body_too_large", b""),
    ],
    ids=["text-plain", "no-content-type", "too-deep", "declared-too-large", "streamed-too-large"],
)  # fmt: skip
def test_every_refusal_of_an_operators_request_is_an_entry(
    client, auth, gateway, sent, status, code, committed
):
    """What the HTTP layer refuses before the spine (a body not sent as JSON, one the
    parser gives up on, one over the size limit) is a "rejected" entry as a malformed body
    is, when an operator sent it; without a valid token it is refused the same, unlogged."""
    path = "/v1/verify/income-at-least"

    def send(headers):
        content = sent["content"]() if callable(sent["content"]) else sent["content"]
        return client.post(path, content=content, headers={**sent.get("headers", {}), **headers})

    before = audit_count(gateway)
    refused = send({})
    assert refused.status_code == status and refused.json()["code"] == code, refused.text
    assert "audit" not in refused.json() and audit_count(gateway) == before
    response = send(auth())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code and problem["audit"]["entry"] == before
    canonical, _, _ = entry(gateway, before)
    record = json.loads(bytes(canonical))["entry"]
    assert (record["outcome"], record["refusal"]) == ("rejected", code)
    assert record["operator"] == "demo-bank" and record["decision"] is None
    assert record["operation"] == {"kind": "verify"}
    nonce = bytes.fromhex(problem["audit"]["nonce"])
    request = f"verify {path}\n".encode() + committed
    assert record["request_digest"] == "sha256:" + hashlib.sha256(nonce + request).hexdigest()
    assert audit_count(gateway) == before + 1


def test_two_processes_write_one_gapless_log(client, auth, gateway):
    """A second gateway process on the same database: one log, no gap, no duplicate."""
    second = gateway.another("--workers", "2")
    try:
        body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}]}

        def send(n: int) -> int:
            url = (gateway.url, second.url)[n % 2]
            response = httpx.post(
                f"{url}/v1/verify/income-at-least", json=body, headers=auth(), timeout=30
            )
            assert response.status_code == 200, response.text
            return response.json()["audit"]["entry"]

        with ThreadPoolExecutor(8) as pool:
            entries = list(pool.map(send, range(120)))
    finally:
        stop_gateway(second)
    assert len(set(entries)) == len(entries)  # no two answers share an entry
    with gateway.gateway_db() as db:
        indexes = [row[0] for row in db.execute(text('SELECT "index" FROM audit_entry ORDER BY 1'))]
    assert indexes == list(range(len(indexes)))
    assert set(entries) <= set(indexes)
