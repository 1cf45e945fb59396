"""SM2 with SM3 tree heads (国密): interop with OpenSSL both ways, a gateway signing with
SM2, and logs that change their signing key (rotation, revocation, forgeries)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import Running, start_beside, start_gateway, stop_gateway
from dataauth.audit.export import export_log
from dataauth.audit.heads import sign_head, verify_head
from dataauth.audit.ledger import Ledger
from dataauth.audit.log import AuditLog, Record
from dataauth.audit.merkle import MerkleTree, leaf_hash
from dataauth.audit.rotation import (
    KIND,
    KeyChangeRefused,
    load_signer,
    message,
    revoke_last,
    rotate_to,
)
from dataauth.audit.signing import Ed25519Signer, pem_der, public_key_id, verify_signature
from dataauth.audit.sm2 import ALGORITHM, SM2Signer, pem_block, verify_sm2
from dataauth.audit.verify import Failed, load_keys, retired_keys, verify_export, verify_receipt
from dataauth.canonical import canonical, utc_now
from dataauth.store.engine import gateway_engine

DISTID = "distid:1234567812345678"
MESSAGE = b"dataauth tree head v1\n" + canonical({"size": 1})


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, timeout=30)


@pytest.fixture
def signer(tmp_path: Path) -> SM2Signer:
    return SM2Signer.from_keys_dir(tmp_path / "keys")


def test_the_key_file_is_private_pkcs8_and_stays(signer, tmp_path):
    path = tmp_path / "keys" / "audit-signing.sm2.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    text = openssl("pkey", "-in", path, "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert b"ASN1 OID: SM2" in text.stdout
    assert SM2Signer.from_keys_dir(tmp_path / "keys").key_id == signer.key_id


def test_the_key_id_is_the_sha256_of_the_der_spki(signer, tmp_path):
    (tmp_path / "pub.pem").write_text(signer.public_key_pem())
    der = openssl("pkey", "-pubin", "-in", tmp_path / "pub.pem", "-outform", "DER")
    assert der.returncode == 0, der.stderr
    assert hashlib.sha256(der.stdout).hexdigest() == signer.key_id
    assert public_key_id(signer.public_key_pem()) == signer.key_id
    derived = openssl("pkey", "-in", tmp_path / "keys" / "audit-signing.sm2.pem", "-pubout")
    assert derived.stdout.decode() == signer.public_key_pem()


def test_openssl_verifies_our_signature_of_a_head(signer, tmp_path):
    head = sign_head(signer, 3, bytes(32), "2026-12-02T00:00:00Z", "")
    assert head.algorithm == ALGORITHM
    assert verify_head(head, {signer.key_id: signer.public_key_pem()})
    (tmp_path / "pub.pem").write_text(signer.public_key_pem())
    (tmp_path / "msg").write_bytes(head.message())
    (tmp_path / "sig").write_bytes(head.signature)
    verify = ("pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "pub.pem", "-rawin",
              "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig", "-digest", "sm3")  # fmt: skip
    checked = openssl(*verify, "-pkeyopt", DISTID)
    assert checked.returncode == 0, checked.stderr
    assert b"Signature Verified Successfully" in checked.stdout
    # OpenSSL 3 has no default ID: without it Z differs and the signature fails
    assert openssl(*verify).returncode != 0
    (tmp_path / "msg").write_bytes(head.message() + b"x")
    assert openssl(*verify, "-pkeyopt", DISTID).returncode != 0


def test_we_verify_openssls_signature_and_read_its_key(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    made = openssl("genpkey", "-algorithm", "SM2", "-out", keys / "audit-signing.sm2.pem")
    assert made.returncode == 0, made.stderr
    public = openssl("pkey", "-in", keys / "audit-signing.sm2.pem", "-pubout").stdout.decode()
    (tmp_path / "msg").write_bytes(MESSAGE)
    signed = openssl("pkeyutl", "-sign", "-inkey", keys / "audit-signing.sm2.pem", "-rawin",
                     "-in", tmp_path / "msg", "-digest", "sm3", "-pkeyopt", DISTID)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert verify_sm2(public, MESSAGE, signed.stdout)
    assert not verify_sm2(public, MESSAGE + b"x", signed.stdout)
    # the key OpenSSL made signs here too, and OpenSSL's public key is ours
    ours = SM2Signer.from_keys_dir(keys)
    assert ours.public_key_pem() == public
    assert verify_sm2(public, MESSAGE, ours.sign(MESSAGE))


def test_a_key_file_whose_public_key_is_another_is_refused(signer, tmp_path):
    other = SM2Signer.from_keys_dir(tmp_path / "other")
    path = tmp_path / "keys" / "audit-signing.sm2.pem"
    mine = pem_der(path.read_text(), "PRIVATE KEY")
    theirs = pem_der(other.public_key_pem())
    path.write_text(pem_block("PRIVATE KEY", mine[:-64] + theirs[-64:]))
    with pytest.raises(ValueError, match="its public key is not its private key's"):
        SM2Signer.from_keys_dir(tmp_path / "keys")
    path.write_text(pem_block("PRIVATE KEY", mine[:-1]))
    with pytest.raises(ValueError, match="not an SM2 private key"):
        SM2Signer.from_keys_dir(tmp_path / "keys")


def test_malformed_keys_and_signatures_verify_false(signer, tmp_path):
    ed25519 = Ed25519Signer.from_keys_dir(tmp_path / "keys")
    signature = signer.sign(MESSAGE)
    assert not verify_signature(ALGORITHM, ed25519.public_key_pem(), MESSAGE, signature)
    assert not verify_signature(ALGORITHM, "not a key", MESSAGE, signature)
    assert not verify_signature(ALGORITHM, signer.public_key_pem(), MESSAGE, b"\x30\x00")
    assert not verify_signature(ALGORITHM, signer.public_key_pem(), MESSAGE, b"")
    assert not verify_signature("Ed25519", signer.public_key_pem(), MESSAGE, signature)


# a log that changes its key, built with the real ledger, log and export on SQLite


class Log:
    def __init__(self, where: Path) -> None:
        self.keys = where / "keys"
        self.engine = gateway_engine(f"sqlite:///{where / 'gateway.sqlite'}")
        self.audit = AuditLog(self.engine)
        self.export_dir = where / "export"

    def append(self, count: int = 2) -> None:
        for n in range(count):
            self.audit.append(
                Record.action(
                    utc_now(),
                    "test",
                    {"kind": "test.step", "n": n},
                    "",
                    purpose="test",
                    request=b"{}",
                    outcome="done",
                )
            )

    def head(self, signer) -> None:
        assert Ledger(self.engine, signer).sign_pending() is not None

    def verify(self):
        shutil.rmtree(self.export_dir, ignore_errors=True)
        export_log(self.engine, self.export_dir)
        return verify_export(self.export_dir)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path)


def test_a_log_rotated_from_ed25519_to_sm2_verifies(log):
    old, new = load_signer("ed25519", log.keys), load_signer("sm2", log.keys)
    log.append()
    log.head(old)
    change = rotate_to(log.engine, new, log.keys, "")
    assert change is not None and change["reason"] == "rotation"
    assert rotate_to(log.engine, new, log.keys, "") is None  # logged once
    log.append()
    log.head(new)
    report = log.verify()
    assert [c["reason"] for c in report.key_changes] == ["rotation"]
    assert report.key_changes[0]["to_algorithm"] == ALGORITHM
    # and back again, SM2 vouching for a new Ed25519 head
    rotate_to(log.engine, old, log.keys, "")
    log.append()
    log.head(old)
    assert [c["to_algorithm"] for c in log.verify().key_changes] == [ALGORITHM, "Ed25519"]


def test_a_key_change_without_a_signed_step_fails(log):
    old, new = load_signer("ed25519", log.keys), load_signer("sm2", log.keys)
    log.append()
    log.head(old)
    log.append()
    log.head(new)
    with pytest.raises(
        Failed, match=r"no key change from key .* is logged after the head at size 2"
    ):
        log.verify()


def _forged(log: Log, signed_by, reason: str = "rotation") -> None:
    old, new = load_signer("ed25519", log.keys), load_signer("sm2", log.keys)
    log.append()
    log.head(old)
    head = Ledger(log.engine).latest_head()
    change = {
        "kind": KIND,
        "reason": reason,
        "from_key_id": old.key_id,
        "to_key_id": new.key_id,
        "to_algorithm": new.algorithm,
        "after": head.digest(),
    }
    change["signature"] = signed_by(new, change).hex()
    log.audit.append(
        Record.action(
            utc_now(),
            "gateway",
            change,
            "",
            purpose="audit signing key change",
            request=canonical(change),
            outcome="rotated",
        )
    )
    log.head(new)


@pytest.mark.parametrize(
    "signed_by",
    [
        pytest.param(lambda new, change: new.sign(message(change)), id="by the new key"),
        pytest.param(lambda new, change: b"\x30\x00", id="garbage"),
        pytest.param(
            lambda new, change: new.sign(message(change | {"after": "0" * 64})), id="another point"
        ),
    ],
)
def test_a_forged_rotation_fails(log, signed_by):
    _forged(log, signed_by)
    with pytest.raises(Failed, match=r"tree head at size 3: signed by key .* \(SM2-SM3\), but no"):
        log.verify()


def test_a_revocation_is_signed_by_the_new_key_and_reported(log):
    old = load_signer("ed25519", log.keys)
    log.append()
    log.head(old)
    os.remove(log.keys / "audit-signing.ed25519.pem")  # the old key is lost
    new = load_signer("sm2", log.keys)
    with pytest.raises(KeyChangeRefused, match="not under keys/"):
        rotate_to(log.engine, new, log.keys, "")
    with pytest.raises(KeyChangeRefused, match="is the configured signer"):
        revoke_last(log.engine, old, "")
    change = revoke_last(log.engine, new, "")
    assert change["reason"] == "revocation"
    assert rotate_to(log.engine, new, log.keys, "") is None  # the start goes on
    log.append()
    log.head(new)
    assert [c["reason"] for c in log.verify().key_changes] == ["revocation"]


def _receipt(head, tree: MerkleTree, index: int) -> dict:
    return {
        "index": index,
        "leaf_hash": tree.leaf(index).hex(),
        "tree_size": head.size,
        "proof": [p.hex() for p in tree.inclusion_proof(index, head.size)],
        "tree_head": head.as_dict(),
    }


def test_a_revoked_key_cannot_vouch_for_a_later_receipt(log):
    """Whoever took the lost key signs a head over a tree of their own, larger than the
    last one the key signed, and a receipt of it. The receipt's checker has keys.json
    alone, not the log's entries: the key is listed there with the size of its last
    head, so the forgery fails while receipts of the key's own heads still verify."""
    old = load_signer("ed25519", log.keys)
    log.append()
    log.head(old)
    honest = Ledger(log.engine)
    honest.sync()
    before = _receipt(honest.latest_head(), honest.tree, 1)
    os.remove(log.keys / "audit-signing.ed25519.pem")
    new = load_signer("sm2", log.keys)
    revoke_last(log.engine, new, "")
    log.append()
    log.head(new)
    listed = json.loads(json.dumps({"keys": Ledger(log.engine).keys()}))
    (last,) = [k for k in listed["keys"] if "last_size" in k]
    assert (last["key_id"], last["last_size"]) == (old.key_id, 2)
    keys, retired = load_keys(listed), retired_keys(listed)
    assert verify_receipt(before, keys, retired=retired) == []
    fake = MerkleTree()
    for n in range(5):
        fake.append(leaf_hash(b"a forged entry %d" % n))
    forged = sign_head(old, 5, fake.root(5), utc_now().isoformat(), "")
    with pytest.raises(Failed, match=r"size 5: signed by key .*retired after the head at size 2"):
        verify_receipt(_receipt(forged, fake, 3), keys, retired=retired)
    assert verify_receipt(_receipt(forged, fake, 3), keys) == []  # what keys alone allowed
    honest = Ledger(log.engine)
    honest.sync()
    assert (
        verify_receipt(_receipt(honest.latest_head(), honest.tree, 3), keys, retired=retired) == []
    )


# a gateway signing with SM2, and one whose setting changes


def dataauth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataauth.cli", *args], capture_output=True, text=True, timeout=120
    )


def ask_and_export(running: Running, where: Path) -> Path:
    with httpx.Client(base_url=running.url) as http:
        headers = {"Authorization": f"Bearer {running.token('demo-bank')}"}
        body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"name": "张三"}}]}
        entry = http.post("/v1/verify/identity-match", json=body, headers=headers).json()
        index = entry["audit"]["entry"]
        for _ in range(100):
            proof = http.get(f"/v1/audit/proof/inclusion?index={index}")
            if proof.status_code == 200:
                break
            time.sleep(0.1)
        assert proof.status_code == 200, proof.text
    directory = where / "export"
    shutil.rmtree(directory, ignore_errors=True)
    result = running.cli("audit", "export", str(directory))
    assert result.returncode == 0, result.stderr
    return directory


def test_a_gateway_signing_with_sm2_exports_a_log_that_verifies(gateway, tmp_path):
    running = start_beside(gateway, tmp_path, env={"DATAAUTH_AUDIT_SIGNING": "sm2"})
    try:
        exported = ask_and_export(running, tmp_path)
    finally:
        stop_gateway(running)
    heads = json.loads((exported / "heads.json").read_text())
    assert {h["algorithm"] for h in heads} == {ALGORITHM}
    verified = dataauth("audit", "verify", str(exported))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    heads[-1]["signature"] = heads[-1]["signature"][:-2] + (
        "00" if heads[-1]["signature"][-2:] != "00" else "01"
    )
    (exported / "heads.json").write_text(json.dumps(heads))
    tampered = dataauth("audit", "verify", str(exported))
    assert tampered.returncode != 0
    assert "its signature does not verify" in tampered.stdout + tampered.stderr


def test_a_gateway_switched_to_sm2_logs_the_rotation(gateway, tmp_path):
    running = start_beside(gateway, tmp_path)
    try:
        ask_and_export(running, tmp_path)
    finally:
        stop_gateway(running)
    env = {"DATAAUTH_AUDIT_SIGNING": "sm2"}
    again = start_gateway(running.data_dir, "--demo", env={**running.env, **env})
    try:
        exported = ask_and_export(again, tmp_path)
    finally:
        stop_gateway(again)
    algorithms = [h["algorithm"] for h in json.loads((exported / "heads.json").read_text())]
    assert algorithms[0] == "Ed25519" and algorithms[-1] == ALGORITHM
    verified = dataauth("audit", "verify", str(exported))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "rotated (signed by the old key)" in verified.stdout
    replayed = dataauth("audit", "replay", str(exported))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert " 0 differ" in replayed.stdout and "administrative entries" in replayed.stdout
    assert (running.data_dir / "keys" / "audit-signing.sm2.pem").stat().st_mode & 0o777 == 0o600


def test_a_lost_key_stops_the_start_until_it_is_revoked(gateway, tmp_path):
    running = start_beside(gateway, tmp_path)
    try:
        ask_and_export(running, tmp_path)
    finally:
        stop_gateway(running)
    (running.data_dir / "keys" / "audit-signing.ed25519.pem").unlink()
    env = {**running.env, "DATAAUTH_AUDIT_SIGNING": "sm2"}
    refused = subprocess.run(
        [sys.executable, "-m", "dataauth.cli", "serve", "--demo", "--port", "9",
         "--data-dir", str(running.data_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "not under keys/" in refused.stderr and "revoke-key" in refused.stderr
    running.env.update(env)
    revoked = running.cli("audit", "revoke-key")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert "revoked key" in revoked.stdout
    again = start_gateway(running.data_dir, "--demo", env=env)
    try:
        exported = ask_and_export(again, tmp_path)
    finally:
        stop_gateway(again)
    verified = dataauth("audit", "verify", str(exported))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "REVOKED (signed by the new key only" in verified.stdout
    twice = running.cli("audit", "revoke-key")
    assert twice.returncode != 0 and "is the configured signer" in twice.stderr
