"""RFC 3161 time-stamps: a real TSA (OpenSSL's ``ts -reply``), real tokens, a real gateway.

Stamps land at the interval and verify; a gateway whose TSA goes away refuses every
operation (``503 timestamping_stale``, each refusal on the record) once a head has
waited longer than the allowed period, and serves again when the TSA is back; an
export's tokens verify against the right roots only, and not altered, moved to
another head, or dated before their head.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import start_gateway, stop_gateway
from dataauth.audit.heads import sign_head
from dataauth.audit.ledger import Ledger
from dataauth.audit.log import AuditLog, Record
from dataauth.audit.signing import Ed25519Signer
from dataauth.audit.stamper import Freshness, Stamper, Stamps
from dataauth.audit.timestamps import (
    TimestampError,
    check_stamp,
    check_stamps,
    load_roots,
    request_stamp,
)
from dataauth.canonical import utc_now
from dataauth.store.engine import gateway_engine
from tsa_server import LocalTSA

SUBJECT = {"key": "440115195011083222", "claims": {"name": "陈丽"}}


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory):
    served = LocalTSA(tmp_path_factory.mktemp("tsa")).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def other_tsa(tmp_path_factory: pytest.TempPathFactory):
    served = LocalTSA(tmp_path_factory.mktemp("other-tsa"), name="another").start()
    yield served
    served.stop()


def a_log(where: Path) -> tuple[Ledger, AuditLog]:
    engine = gateway_engine(f"sqlite:///{where / 'gateway.sqlite'}")
    return Ledger(engine, Ed25519Signer.from_keys_dir(where / "keys")), AuditLog(engine)


def append(log: AuditLog, n: int = 1) -> None:
    for _ in range(n):
        log.append(Record.action(utc_now(), "demo-bank", {"kind": "test"}, "sha256:" + "0" * 64,
                                 purpose="test", request=b"{}", outcome="published"))  # fmt: skip


def test_stamps_land_at_the_interval_and_verify(tmp_path, tsa):
    ledger, log = a_log(tmp_path)
    freshness = Freshness(max_age=5.0)
    stamper = Stamper(ledger, freshness, tsa.url, load_roots(tsa.roots), interval=0.3)
    stamper.start()
    try:
        for _ in range(3):
            append(log, 5)
            ledger.sign_pending()
            time.sleep(0.5)
    finally:
        stamper.stop()
    stamps = Stamps(ledger.engine).between(0, 10**9)
    heads = {h.size: h for h in ledger.heads()}
    assert len(stamps) >= 3, stamps
    assert [s.size for s in stamps] == sorted(s.size for s in stamps)
    for stamp in stamps:
        check_stamp(stamp, heads[stamp.size], load_roots(tsa.roots))
    assert not freshness.stale() and freshness.status()["newest_stamp"]["size"] == 15
    assert check_stamps([s.as_dict() for s in stamps], list(heads.values()),
                        load_roots(tsa.roots), max_gap=5.0).unstamped == 0  # fmt: skip


def test_a_token_verifies_only_for_its_head_under_its_roots(tmp_path, tsa, other_tsa):
    ledger, log = a_log(tmp_path)
    append(log)
    first = ledger.sign_pending()
    append(log)
    second = ledger.sign_pending()
    roots = load_roots(tsa.roots)
    stamp = request_stamp(tsa.url, first, roots, timeout=10)
    check_stamp(stamp, first, roots)

    with pytest.raises(TimestampError, match="certificates"):
        check_stamp(stamp, first, load_roots(other_tsa.roots))  # another CA's roots
    forged = request_stamp(other_tsa.url, first, load_roots(other_tsa.roots), timeout=10)
    with pytest.raises(TimestampError):
        check_stamp(forged, first, roots)  # a token from a TSA these roots do not trust
    moved = type(stamp)(second.size, stamp.token, stamp.gen_time)
    with pytest.raises(TimestampError, match="Mismatch between messages"):
        check_stamp(moved, second, roots)  # the imprint of another head
    altered = bytearray(stamp.token)
    altered[-10] ^= 0x01  # inside the signature
    with pytest.raises(TimestampError):
        check_stamp(type(stamp)(first.size, bytes(altered), stamp.gen_time), first, roots)
    # the TSA asked to answer another request's nonce: request_stamp refuses it
    with pytest.raises(TimestampError):
        request_stamp(tsa.url, first, load_roots(other_tsa.roots), timeout=10)


def test_a_stamp_before_its_heads_time_is_backdating(tmp_path, tsa):
    ledger, _ = a_log(tmp_path)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    head = sign_head(ledger.signer, 1, b"\x00" * 32, later, "")
    stamp = request_stamp(tsa.url, head, load_roots(tsa.roots), timeout=10)
    with pytest.raises(TimestampError, match="before the head's own time"):
        check_stamp(stamp, head, load_roots(tsa.roots))


def identity(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/verify/identity-match",
        json={"purpose": "credit", "subjects": [SUBJECT]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def dataauth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataauth.cli", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_gateway_fails_closed_while_its_tsa_is_away(tmp_path, tsa, other_tsa):
    data = tmp_path / "data"
    running = start_gateway(data, "--demo", env={
        "DATAAUTH_TSA_URL": tsa.url, "DATAAUTH_TSA_ROOTS": str(tsa.roots),
        "DATAAUTH_TSA_INTERVAL": "0.3", "DATAAUTH_TSA_MAX_AGE": "2", "DATAAUTH_TSA_TIMEOUT": "1",
        "DATAAUTH_HEAD_DELAY_MS": "50"})  # fmt: skip
    try:
        token = running.token()
        assert identity(running.url, token).status_code == 200
        health = lambda: httpx.get(f"{running.url}/healthz", timeout=10)  # noqa: E731
        stamped = lambda: health().json()["timestamping"]["newest_stamp"] or {}  # noqa: E731
        wait_for(lambda: stamped().get("size", 0) >= 1)

        tsa.stop()
        assert identity(running.url, token).status_code == 200  # within the allowed period
        wait_for(lambda: health().status_code == 503)
        assert health().json()["status"] == "timestamping_stale"
        refused = [identity(running.url, token) for _ in range(3)]
        for response in refused:
            assert response.status_code == 503
            body = response.json()
            assert body["code"] == "timestamping_stale"
            assert response.headers["content-type"].startswith("application/problem+json")
        entries = [r.json()["audit"]["entry"] for r in refused]
        assert entries == sorted(set(entries))  # each refusal is its own entry
        department = running.token("a-department", roles=("department",))
        publish = httpx.post(f"{running.url}/v1/admin/policy", json={"modules": {}, "data": {}},
                             headers={"Authorization": f"Bearer {department}"})  # fmt: skip
        assert publish.status_code == 503 and publish.json()["code"] == "timestamping_stale"
        regulator = running.token("cac-regulator", roles=("regulator",))
        last = refused[-1].json()["audit"]["entry"]
        logged = httpx.get(f"{running.url}/v1/audit/entries?from={last}&limit=1",
                           headers={"Authorization": f"Bearer {regulator}"}).json()  # fmt: skip
        entry = logged["entries"][0]["entry"]
        assert (entry["outcome"], entry["refusal"]) == ("rejected", "timestamping_stale")
        assert entry["decision"] is None and entry["subjects"] == []

        tsa.start()  # back at the same URL: service returns by itself
        wait_for(lambda: health().status_code == 200)
        assert identity(running.url, token).status_code == 200
        wait_for(lambda: not health().json()["timestamping"]["unstamped_since"])
    finally:
        stop_gateway(running)

    export = tmp_path / "export"
    exported = running.cli("audit", "export", str(export))
    assert exported.returncode == 0, exported.stderr
    assert (export / "timestamps.json").exists()
    verify = lambda *args: dataauth("audit", "verify", str(export), *args)  # noqa: E731
    plain = verify()
    assert plain.returncode == 0 and "not checked (give --tsa-roots)" in plain.stdout
    checked = verify("--tsa-roots", str(tsa.roots))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "time-stamps verified against the TSA roots" in checked.stdout
    assert verify("--tsa-roots", str(tsa.roots), "--max-stamp-gap", "3600").returncode == 0
    stale = verify("--tsa-roots", str(tsa.roots), "--max-stamp-gap", "1")
    assert stale.returncode == 1 and "no time-stamp within 1 s" in stale.stdout + stale.stderr
    other = verify("--tsa-roots", str(other_tsa.roots))
    assert other.returncode == 1 and "time-stamp of the head" in other.stdout + other.stderr

    stamps = json.loads((export / "timestamps.json").read_text())
    tampered = tmp_path / "tampered"
    shutil.copytree(export, tampered)
    token = bytearray(base64.b64decode(stamps[0]["token"]))
    token[-10] ^= 0x01
    (tampered / "timestamps.json").write_text(json.dumps(
        [{**stamps[0], "token": base64.b64encode(token).decode()}, *stamps[1:]]))  # fmt: skip
    forged = dataauth("audit", "verify", str(tampered), "--tsa-roots", str(tsa.roots))
    assert forged.returncode == 1
    sizes = sorted({s["size"] for s in stamps})
    (tampered / "timestamps.json").write_text(json.dumps([{**stamps[-1], "size": sizes[0]}]))
    moved = dataauth("audit", "verify", str(tampered), "--tsa-roots", str(tsa.roots))
    assert moved.returncode == 1 or len(sizes) == 1


def test_settings_refuse_a_tsa_without_roots_or_with_no_room_to_retry(tmp_path, tsa):
    from dataauth.config import Settings

    assert Settings().tsa_refusal() is None  # off by default
    assert "TSA_ROOTS" in Settings(tsa_url=tsa.url).tsa_refusal()
    tight = Settings(tsa_url=tsa.url, tsa_roots=tsa.roots, tsa_interval=60, tsa_max_age=60)
    assert "TSA_MAX_AGE" in tight.tsa_refusal()
    assert Settings(tsa_url=tsa.url, tsa_roots=tsa.roots).tsa_refusal() is None


def test_freshness_fails_closed_when_the_stamper_stops_looking():
    now = [datetime(2026, 12, 2, tzinfo=UTC)]
    freshness = Freshness(max_age=10, clock=lambda: now[0])
    assert not freshness.stale() and freshness.refusal() is None
    now[0] += timedelta(seconds=11)  # no round since: a stuck stamper is not trusted
    assert freshness.stale() and freshness.refusal().code == "timestamping_stale"
    freshness.update(None, None, None)
    assert not freshness.stale()
    freshness.update(None, now[0] - timedelta(seconds=11), "the TSA did not answer")
    assert freshness.stale() and freshness.status()["last_error"] == "the TSA did not answer"
