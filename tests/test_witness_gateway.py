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
from dataauth.audit.note import Note
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
    finally:
        for witness in witnesses:
            witness.stop()
        stop_gateway(gateway)
