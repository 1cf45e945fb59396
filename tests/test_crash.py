"""A gateway killed mid-traffic (SIGKILL) loses no entry of any answer it gave."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import DATABASES, on_each_database, start_beside, stop_gateway
from dataauth.audit.heads import TreeHead, verify_head
from dataauth.audit.merkle import verify_inclusion
from test_audit_log import covered, dataauth, keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


def test_sigkill_loses_no_answered_entry(gateway, tmp_path):
    running = start_beside(gateway, tmp_path)
    headers = {"Authorization": f"Bearer {running.token('demo-bank')}"}
    body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}]}
    received: list[dict] = []

    def send() -> None:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            while True:
                try:
                    response = http.post("/v1/verify/income-at-least", json=body, headers=headers)
                except httpx.HTTPError:
                    return  # the gateway is gone
                if response.status_code == 200:
                    received.append(response.json()["audit"])

    clients = [threading.Thread(target=send) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    running.process.kill()  # SIGKILL: no shutdown, no last head signed
    running.process.wait()
    for thread in clients:
        thread.join(timeout=20)
    assert len(received) > 20

    assert_every_receipt_kept(running, received, tmp_path)


def assert_every_receipt_kept(running, received: list[dict], tmp_path: Path) -> None:
    """After a crash: a restarted gateway proves every receipt answered before it (leaf,
    signed head, inclusion proof), and the export of the log verifies."""
    restarted = running.another()
    try:
        with httpx.Client(base_url=restarted.url) as http:
            public_keys = keys(http)
            for receipt in received:
                full = covered(http, receipt["entry"])
                assert full["leaf_hash"] == receipt["leaf_hash"]
                head = TreeHead.from_dict(full["tree_head"])
                assert verify_head(head, public_keys)
                proof = [bytes.fromhex(p) for p in full["proof"]]
                assert verify_inclusion(bytes.fromhex(full["leaf_hash"]), receipt["entry"],
                                        head.size, proof, head.root)  # fmt: skip
    finally:
        stop_gateway(restarted)
    exported = running.cli("audit", "export", str(tmp_path / "x"))
    assert exported.returncode == 0, exported.stderr
    verified = dataauth("audit", "verify", str(tmp_path / "x"))
    assert verified.returncode == 0, verified.stderr
