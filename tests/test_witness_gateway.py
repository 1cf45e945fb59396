"""A gateway with two real witnesses: each new checkpoint is pushed to both, their
cosignatures come back into the receipt, the served checkpoint and the export, and
a two-of-two policy passes on them and fails where a witness key is wrong or missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import free_port, start_gateway, stop_gateway
from dataauth.audit.checkpoints import note_signer
from dataauth.audit.ledger import HeadSigner, Ledger
from dataauth.audit.log import AuditLog, Record
from dataauth.audit.note import Note
from dataauth.audit.pusher import WitnessEndpoint, WitnessPusher
from dataauth.audit.signing import Ed25519Signer
from dataauth.canonical import utc_now
from dataauth.store.engine import gateway_engine
from test_witness import start_witness

pytestmark = pytest.mark.slow

ORIGIN = "gateway.example.test/audit"
BODY = {
    "purpose": "credit",
    "subjects": [{"key": "440106199001010011", "claims": {"name": "张三"}}],
}


def dataauth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataauth.cli", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_receipts_and_exports_carry_both_witnesses_cosignatures(tmp_path):
    names = ["witness.example.test/w1", "witness.example.test/w2"]
    folders = [tmp_path / "w1", tmp_path / "w2"]
    vkeys = [dataauth("witness", "key", "--dir", str(f), "--name", n).stdout.strip()
             for f, n in zip(folders, names, strict=True)]  # fmt: skip
    ports = [free_port(), free_port()]
    settings = [f"http://127.0.0.1:{p} {v}" for p, v in zip(ports, vkeys, strict=True)]
    gateway = start_gateway(
        tmp_path / "data",
        "--demo",
        env={"DATAAUTH_LOG_ORIGIN": ORIGIN, "DATAAUTH_WITNESSES": json.dumps(settings)},
    )
    witnesses = []
    try:
        with create_engine(gateway.database_url).connect() as connection:
            log_vkey = connection.execute(text("SELECT vkey FROM checkpoint_key")).scalar()
        # the witnesses start after the gateway: until then its pushes fail, and wait
        for folder, name, port in zip(folders, names, ports, strict=True):
            witness = start_witness(folder, name, log_vkey, port=port)
            witnesses.append(witness)
        client = httpx.Client(base_url=gateway.url, timeout=30)
        auth = {"Authorization": f"Bearer {gateway.token()}"}
        for _ in range(3):
            entry = client.post("/v1/verify/identity-match", json=BODY, headers=auth).json()
        index = entry["audit"]["entry"]
        receipt = None
        for _ in range(200):  # the head, then both witnesses' cosignatures of it
            answer = client.get("/v1/audit/proof/inclusion", params={"index": index})
            if answer.status_code == 200:
                receipt = answer.json()
                if len(Note.parse(receipt["checkpoint"].encode()).signatures) == 3:
                    break
            time.sleep(0.1)
        assert receipt is not None
        signed = Note.parse(receipt["checkpoint"].encode())
        assert [s.name for s in signed.signatures] == [ORIGIN, *names]
        served = client.get("/checkpoint").content
        assert len(Note.parse(served).signatures) == 3
        (tmp_path / "receipt.json").write_text(json.dumps(receipt))
        (tmp_path / "keys.json").write_text(client.get("/v1/audit/keys").text)
        both = [arg for v in vkeys for arg in ("--witness", v)]
        check = ["audit", "verify-receipt", str(tmp_path / "receipt.json"),
                 "--keys", str(tmp_path / "keys.json")]  # fmt: skip
        passed = dataauth(*check, *both, "--witnesses-needed", "2")
        assert passed.returncode == 0, passed.stderr
        assert "witnessed by 2 of 2" in passed.stdout
        # the log over HTTP as tiles, its served checkpoint under the same policy
        regulator = gateway.token("cac-regulator", roles=("regulator",))
        tiles = dataauth("audit", "verify", "--url", gateway.url, "--vkey", log_vkey,
                         "--token", regulator, *both, "--witnesses-needed", "2")  # fmt: skip
        assert tiles.returncode == 0, tiles.stderr
        assert "witnessed by 2 of 2" in tiles.stdout
        # a key that is not the witness's (same name, another key): the policy fails
        stranger = dataauth("witness", "key", "--dir", str(tmp_path / "x"), "--name", names[1])
        wrong = dataauth(*check, "--witness", vkeys[0], "--witness", stranger.stdout.strip())
        assert wrong.returncode == 1
        assert f"no cosignature from {names[1]}" in wrong.stderr

        # the export: its last head is the one both witnesses cosigned (no entry since)
        size = signed.text.split("\n")[1]
        export = tmp_path / "export"
        exported = dataauth("audit", "export", str(export), "--data-dir", str(gateway.data_dir),
                            "--to", size)  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        verified = dataauth("audit", "verify", str(export), *both, "--witnesses-needed", "2")
        assert verified.returncode == 0, verified.stderr
        assert "witnessed by 2 of 2" in verified.stdout
        heads = json.loads((export / "heads.json").read_text())
        heads[-1]["checkpoint"] = Note(signed.text, signed.signatures[:2]).serialise().decode()
        (export / "heads.json").write_text(json.dumps(heads))
        missing = dataauth("audit", "verify", str(export), *both)
        assert missing.returncode == 1
        assert "the witness policy is not met: 1 of the 2" in missing.stderr
        assert f"no cosignature from {names[1]}" in missing.stderr
        # more traffic signs newer heads that no witness has cosigned (they are gone):
        # the receipt still names a head both witnesses cosigned, not the newest
        for witness in witnesses:
            witness.stop()
        for _ in range(3):
            client.post("/v1/verify/identity-match", json=BODY, headers=auth)
        time.sleep(0.3)  # a head over them is signed (HEAD_DELAY_MS)
        again = client.get("/v1/audit/proof/inclusion", params={"index": index}).json()
        assert len(Note.parse(again["checkpoint"].encode()).signatures) == 3
        assert again["tree_size"] < client.get("/v1/audit/tree-head").json()["size"]
    finally:
        for witness in witnesses:
            witness.stop()
        stop_gateway(gateway)


def test_pushes_are_spaced_however_many_heads_are_signed(tmp_path):
    """Two workers' pushers on one log whose heads are signed every 50 ms: a witness is
    offered the newest checkpoint at most once a second by each (the heads between are
    covered by the next one's consistency proof), and ends cosigning the last head."""
    engine = gateway_engine(f"sqlite:///{tmp_path / 'log.sqlite'}")
    heads = Ed25519Signer.from_keys_dir(tmp_path / "keys")
    ledger = Ledger(engine, heads, note_signer(engine, heads, tmp_path / "keys", ORIGIN))
    name = "witness.example.test/w1"
    vkey = dataauth("witness", "key", "--dir", str(tmp_path / "w"), "--name", name).stdout
    witness = start_witness(tmp_path / "w", name, ledger.notes.verifier.vkey())
    endpoint = WitnessEndpoint.parse(f"{witness.url} {vkey.strip()}")
    pushers = [WitnessPusher(ledger, [endpoint], interval_seconds=1.0) for _ in range(2)]
    signer = HeadSigner(ledger, 0.05, on_head=lambda: [p.notify() for p in pushers])
    log = AuditLog(engine, on_commit=signer.notify)
    for pusher in pushers:
        pusher.start()
    signer.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            entry = Record.action(utc_now(), "someone", {"kind": "test"}, "sha256:" + "0" * 64,
                                  purpose="test", request=b"{}", outcome="published")  # fmt: skip
            log.append(entry)
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        last = None
        for _ in range(100):  # the last head, then its cosignature, a push round later
            last = ledger.latest_head()
            if last is not None and ledger.checkpoint(last.size).count("— ".encode()) >= 2:
                break
            time.sleep(0.1)
        with engine.connect() as connection:
            cosigned = connection.execute(text("SELECT COUNT(*) FROM witness_cosignature"))
            cosigned = cosigned.scalar()
        signed = len(ledger.heads())
    finally:
        signer.stop()
        for pusher in pushers:
            pusher.stop()
        witness.stop()
    assert signed >= 20, signed  # the log is busy: a head every 50 ms or so
    # each pusher at most once a second, while appending and after it, at the end
    assert 1 <= cosigned <= 2 * (elapsed + 4) + 2, (cosigned, signed)
    assert last is not None and ledger.checkpoint(last.size).count("— ".encode()) >= 2
