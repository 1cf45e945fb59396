"""The verifiable log over HTTP and offline: receipts, heads, proofs, export, tampering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import DATABASES, on_each_database
from dataauth.audit.heads import TreeHead, verify_head
from dataauth.audit.merkle import verify_consistency, verify_inclusion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


BODY = {
    "purpose": "credit",
    "subjects": [{"key": "440106199001010011", "claims": {"name": "张三"}}],
}


def dataauth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataauth.cli", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def covered(client, index: int) -> dict:
    """The receipt of entry ``index``, once a signed tree head covers it."""
    for _ in range(100):
        response = client.get("/v1/audit/proof/inclusion", params={"index": index})
        if response.status_code == 200:
            return response.json()
        assert response.json()["code"] in ("not_yet_covered", "no_tree_head")
        time.sleep(0.05)
    raise AssertionError(f"no head covered entry {index}")


def keys(client) -> dict[str, str]:
    return {k["key_id"]: k["public_key_pem"] for k in client.get("/v1/audit/keys").json()["keys"]}


def test_a_response_carries_a_receipt_that_verifies(client, auth):
    response = client.post("/v1/verify/identity-match", json=BODY, headers=auth())
    receipt = response.json()["audit"]
    assert receipt["proof"] == f"/v1/audit/proof/inclusion?index={receipt['entry']}"
    full = covered(client, receipt["entry"])
    head = TreeHead.from_dict(full["tree_head"])
    assert full["leaf_hash"] == receipt["leaf_hash"]
    assert verify_head(head, keys(client))
    proof = [bytes.fromhex(p) for p in full["proof"]]
    leaf = bytes.fromhex(receipt["leaf_hash"])
    assert verify_inclusion(leaf, receipt["entry"], head.size, proof, head.root)


def test_heads_are_consistent_and_chained(client, auth):
    first = covered(client, 0)["tree_head"]
    for _ in range(3):
        client.post("/v1/verify/identity-match", json=BODY, headers=auth())
    entry = client.post("/v1/verify/identity-match", json=BODY, headers=auth()).json()
    second = covered(client, entry["audit"]["entry"])["tree_head"]
    assert second["size"] > first["size"]
    response = client.get("/v1/audit/proof/consistency",
                          params={"from": first["size"], "to": second["size"]})  # fmt: skip
    assert response.status_code == 200
    proof = [bytes.fromhex(p) for p in response.json()["proof"]]
    assert verify_consistency(first["size"], second["size"], bytes.fromhex(first["root"]),
                              bytes.fromhex(second["root"]), proof)  # fmt: skip


def test_proof_errors_are_problems(client):
    assert client.get("/v1/audit/proof/inclusion", params={"index": 10**9}).json()["code"] == (
        "not_yet_covered"
    )
    assert client.get("/v1/audit/proof/inclusion", params={"index": -1}).status_code == 422
    bad = client.get("/v1/audit/proof/consistency", params={"from": 5, "to": 2})
    assert bad.status_code == 422
    assert (
        client.get("/v1/audit/proof/inclusion", params={"index": 0, "tree_size": 10**9}).json()[
            "code"
        ]
        == "no_tree_head"
    )


def test_entries_by_role(client, auth, gateway):
    client.post("/v1/verify/identity-match", json=BODY, headers=auth("demo-insurer"))
    regulator = client.get("/v1/audit/entries", headers=auth("cac-regulator", roles=("regulator",)),
                           params={"limit": 1000})  # fmt: skip
    assert regulator.status_code == 200
    operators = {e["entry"]["operator"] for e in regulator.json()["entries"]}
    assert {"demo-bank", "demo-insurer"} <= operators
    own = client.get("/v1/audit/entries", headers=auth("demo-insurer"), params={"limit": 1000})
    assert {e["entry"]["operator"] for e in own.json()["entries"]} == {"demo-insurer"}
    assert client.get("/v1/audit/entries", headers=auth("stranger")).status_code == 403
    assert client.get("/v1/audit/entries").status_code == 401


def test_the_database_refuses_updates_and_deletes(gateway, client, auth):
    covered(client, client.post("/v1/verify/identity-match", json=BODY,
                                headers=auth()).json()["audit"]["entry"])  # fmt: skip
    for statement in ("UPDATE audit_entry SET allowed = NOT allowed",
                      "DELETE FROM audit_entry",
                      "DELETE FROM signed_tree_head"):  # fmt: skip
        with gateway.gateway_db() as db, pytest.raises(DBAPIError, match="append-only"):
            db.execute(text(statement))
            db.commit()


@pytest.fixture(scope="module")
def export(gateway, tmp_path_factory) -> Path:
    """An export of the session gateway's log, verified and replayed as is."""
    import httpx

    with httpx.Client(base_url=gateway.url) as http:
        headers = {"Authorization": f"Bearer {gateway.token('demo-bank')}"}
        for product, claims in (("identity-match", {"name": "张三"}),
                                ("income-at-least", {"threshold": 3000})):  # fmt: skip
            body = {"purpose": "credit", "subjects": [{"key": "1", "claims": claims}]}
            last = http.post(f"/v1/verify/{product}", json=body, headers=headers).json()
        http.post(
            "/v1/verify/income-at-least",
            headers={"Authorization": headers["Authorization"]},
            json={
                "purpose": "marketing",
                "subjects": [{"key": "1", "claims": {"threshold": 3000}}],
            },
        )
        covered(http, last["audit"]["entry"])
    directory = tmp_path_factory.mktemp("export") / "log"
    result = gateway.cli("audit", "export", str(directory))
    assert result.returncode == 0, result.stderr
    return directory


def test_export_verifies_and_replays(export):
    verified = dataauth("audit", "verify", str(export))
    assert verified.returncode == 0, verified.stderr
    assert "verified: entries [0," in verified.stdout
    replayed = dataauth("audit", "replay", str(export))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert " 0 differ" in replayed.stdout


def tampered(export: Path, tmp_path: Path, change) -> subprocess.CompletedProcess:
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    change(copy)
    return dataauth("audit", "verify", str(copy))


def edit_lines(path: Path, change) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


def flip_byte(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def entries(change):
    return lambda d: edit_lines(d / "entries.jsonl", change)


def edit_heads(path: Path, change) -> None:
    heads = json.loads(path.read_text())
    change(heads)
    path.write_text(json.dumps(heads))


TAMPERING = {
    "a changed byte": (lambda d: flip_byte(d / "entries.jsonl", b'"purpose":"credit"'),
                       r"entry \d+: its content is not what the tree head at size \d+ signed"),
    "a deleted entry": (entries(lambda ls: ls[:1] + ls[2:]), "entry 1: the line is not entry 1"),
    "an inserted entry": (entries(lambda ls: ls[:1] + ls[:1] + ls[1:]),
                          "entry 1: the line is not entry 1"),
    "reordered entries": (entries(lambda ls: [ls[1], ls[0], *ls[2:]]),
                          "entry 0: the line is not entry 0"),
    "truncated entries": (entries(lambda ls: ls[:-2]), "the export ends at entry"),
    "an altered head": (lambda d: edit_heads(d / "heads.json",
                                             lambda hs: hs[1].update(root="00" * 32)),
                        r"tree head at size \d+: its signature does not verify"),
    "a dropped head": (lambda d: edit_heads(d / "heads.json", lambda hs: hs.pop(1)),
                       r"tree head at size \d+: does not follow the head at size \d+"),
    "the first head dropped": (lambda d: edit_heads(d / "heads.json", lambda hs: hs.pop(0)),
                               "an earlier head is missing"),
    "the last head dropped": (lambda d: edit_heads(d / "heads.json", lambda hs: hs.pop()),
                              "the last tree head covers"),
    "a swapped bundle": (lambda d: [p.write_bytes(p.read_bytes().replace(b"1000", b"9999"))
                                    for p in (d / "bundles").glob("*.json")],
                         "its content has digest"),
    "a foreign key": (lambda d: (d / "keys.json").write_text(json.dumps({"keys": []})),
                      "its signature does not verify"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_is_caught_and_located(export, tmp_path, name):
    change, says = TAMPERING[name]
    result = tampered(export, tmp_path, change)
    assert result.returncode == 1, result.stdout
    assert re.search(says, result.stderr), result.stderr


def test_replay_refuses_a_swapped_bundle(export, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    for path in (copy / "bundles").glob("*.json"):
        path.write_bytes(path.read_bytes().replace(b"1000", b"9999"))
    result = dataauth("audit", "replay", str(copy))
    assert result.returncode == 1 and "has another digest" in result.stderr


def test_verify_receipt_command(client, auth, tmp_path):
    entry = client.post("/v1/verify/identity-match", json=BODY, headers=auth()).json()
    receipt = covered(client, entry["audit"]["entry"])
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    (tmp_path / "keys.json").write_text(client.get("/v1/audit/keys").text)
    ok = dataauth("audit", "verify-receipt", str(tmp_path / "receipt.json"), "--keys",
                  str(tmp_path / "keys.json"))  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    receipt["leaf_hash"] = "00" * 32
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    bad = dataauth("audit", "verify-receipt", str(tmp_path / "receipt.json"), "--keys",
                   str(tmp_path / "keys.json"))  # fmt: skip
    assert bad.returncode == 1 and "is not in the tree" in bad.stderr
