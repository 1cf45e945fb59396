"""The witness (c2sp.org/tlog-witness) as a real process over HTTP, with real keys.

Each answer the spec names is driven: 200 with a cosignature that verifies under the
witness's vkey, 409 with its size as text/x.tlog.size, 422 for a proof that does not
prove, 403 for a checkpoint not signed by the log, 404 for an origin it does not follow,
400 for a body that is not one. Its state survives a restart, and a split view (two
trees of one size, both signed by the log's key) is cosigned once, then refused.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import free_port
from dataauth.audit.merkle import MerkleTree, leaf_hash
from dataauth.audit.note import Checkpoint, Note, Signer, Verifier
from dataauth.audit.witnesses import (
    SIZE_TYPE,
    PolicyError,
    WitnessPolicy,
    add_checkpoint_body,
    cosignatures,
)

ORIGIN = "gateway.example.test/audit"


@dataclass
class WitnessProcess:
    url: str
    directory: Path
    process: subprocess.Popen[bytes]
    vkey: str

    def add(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/add-checkpoint", content=body, timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_witness(
    directory: Path, name: str, *logs: str, port: int | None = None
) -> WitnessProcess:
    """``dataauth witness serve`` on a free port (or ``port``), once it answers."""
    port = port or free_port()
    args = [arg for vkey in logs for arg in ("--log", vkey)]
    process = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "witness", "serve", "--dir", str(directory),
         "--name", name, "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(process.stdout.read().decode())
        try:
            about = httpx.get(url, timeout=1)
            return WitnessProcess(url, directory, process, about.text.splitlines()[0])
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the witness did not start")


class Log:
    """A log built by hand: leaves, a tree, checkpoints signed with the log's note key."""

    def __init__(self, signer: Signer, prefix: bytes = b"entry") -> None:
        self.signer, self.prefix = signer, prefix
        self.tree = MerkleTree()

    def grow(self, count: int) -> Log:
        for _ in range(count):
            self.tree.append(leaf_hash(self.prefix + b" %d" % self.tree.size))
        return self

    def note(self, size: int | None = None) -> Note:
        size = self.tree.size if size is None else size
        return Checkpoint(ORIGIN, size, self.tree.root(size)).sign(self.signer)

    def body(self, old: int, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        return add_checkpoint_body(old, self.tree.consistency_proof(old, size), self.note(size))


@pytest.fixture(scope="module")
def log_key() -> Signer:
    return Signer(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def witness(tmp_path, log_key):
    running = start_witness(tmp_path / "w1", "witness.example.test/w1", log_key.verifier.vkey())
    yield running
    running.stop()


def cosigned(witness: WitnessProcess, note: Note, answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    assert answer.text.startswith("\u2014 witness.example.test/w1 ")
    policy = WitnessPolicy.of([witness.vkey])
    return policy.check(note.text, cosignatures(answer.content))


def test_the_witness_cosigns_a_checkpoint_that_extends_the_last(witness, log_key):
    log = Log(log_key).grow(5)
    at_five = log.note()
    first = witness.add(log.body(0))
    assert cosigned(witness, at_five, first) == ["witness.example.test/w1"]
    stamp = cosignatures(first.content)[0].timestamp()
    assert abs(stamp - time.time()) < 60
    log.grow(8)
    assert cosigned(witness, log.note(), witness.add(log.body(5))) == ["witness.example.test/w1"]
    # the same checkpoint again: cosigned again, nothing rolled back
    assert witness.add(log.body(13)).status_code == 200
    # a Go- or Rust-side reader adds the lines to the note and opens it with the vkey
    note = Note.parse(at_five.serialise() + first.content)
    opened = at_five.with_signatures(note.signatures[1:])
    assert len(opened.signatures) == 2
    vkey = Verifier.from_vkey(witness.vkey)
    assert vkey.key_type == 0x04 and opened.open([vkey]) == [vkey]


def test_409_carries_the_witness_size(witness, log_key):
    log = Log(log_key).grow(6)
    assert witness.add(log.body(0)).status_code == 200
    log.grow(3)
    stale = witness.add(log.body(0))
    assert stale.status_code == 409
    assert stale.headers["content-type"] == SIZE_TYPE
    assert stale.text == "6\n"
    assert witness.add(log.body(2)).text == "6\n"
    assert witness.add(log.body(int(stale.text))).status_code == 200


def test_422_for_a_proof_that_does_not_prove(witness, log_key):
    log = Log(log_key).grow(7)
    assert witness.add(log.body(0)).status_code == 200
    log.grow(5)
    proof = log.tree.consistency_proof(7, 12)
    proof[0] = bytes(32)
    answer = witness.add(add_checkpoint_body(7, proof, log.note()))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "inconsistent"
    # a proof from 0 must be empty, whatever it says
    fresh = Log(log_key, b"other")
    assert witness.add(add_checkpoint_body(7, [], fresh.grow(12).note())).status_code == 422


def test_403_for_a_checkpoint_the_log_did_not_sign(witness, log_key):
    impostor = Signer(ORIGIN, Ed25519PrivateKey.generate())
    answer = witness.add(Log(impostor).grow(3).body(0))
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "bad_signature"
    # the log's key, over a text it did not sign (a changed root)
    note = Log(log_key).grow(3).note()
    forged = Note(note.text.replace(note.text.split("\n")[2], "A" * 43 + "="), note.signatures)
    assert witness.add(add_checkpoint_body(0, [], forged)).status_code == 403
    # nothing was recorded by either
    assert witness.add(Log(log_key).grow(1).body(0)).status_code == 200


def test_404_for_an_origin_it_does_not_follow(witness):
    other = Signer("elsewhere.example.test/log", Ed25519PrivateKey.generate())
    note = Checkpoint("elsewhere.example.test/log", 1, leaf_hash(b"x")).sign(other)
    answer = witness.add(add_checkpoint_body(0, [], note))
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "unknown_log"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",
        b"new 0\n\n",
        b"old 01\n\n",
        b"old -1\n\n",
        b"old 0\nnot base64!\n\n",
        b"old 0\nAAAA\n\n",  # base64, but not 32 bytes
        b"old 0\n\nno checkpoint here\n",
        b"old 0\n" + b"".join(b"A" * 43 + b"=\n" for _ in range(64)) + b"\n",
        b"old \xff\n\n",
    ],
)
def test_400_for_a_body_that_is_not_one(witness, body):
    answer = witness.add(body)
    assert answer.status_code == 400, (body, answer.text)
    assert answer.json()["code"] == "malformed_request"


def test_400_for_an_old_size_over_the_checkpoint(witness, log_key):
    log = Log(log_key).grow(4)
    answer = witness.add(add_checkpoint_body(9, [], log.note()))
    assert answer.status_code == 400 and "over" in answer.json()["detail"]


def test_413_for_a_body_over_the_limit(witness):
    assert witness.add(b"old 0\n" + b"x" * 70_000).status_code == 413


def test_the_state_survives_a_restart_and_the_key_stays(tmp_path, log_key):
    directory = tmp_path / "w"
    first = start_witness(directory, "witness.example.test/w1", log_key.verifier.vkey())
    log = Log(log_key).grow(9)
    assert first.add(log.body(0)).status_code == 200
    first.stop()
    key = directory / "witness.ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "state.json").stat().st_mode) == 0o600
    assert not [p for p in os.listdir(directory) if p.endswith(".tmp")]
    # restarted without --log: the logs it was told are kept, and so is its size
    again = start_witness(directory, "witness.example.test/w1")
    try:
        assert again.vkey == first.vkey
        assert again.add(log.grow(1).body(0)).text == "9\n"
        assert again.add(log.body(9)).status_code == 200
    finally:
        again.stop()
    shown = subprocess.run(
        [sys.executable, "-m", "dataauth.cli", "witness", "key", "--dir", str(directory)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == first.vkey
    renamed = subprocess.run(
        [sys.executable, "-m", "dataauth.cli", "witness", "key", "--dir", str(directory),
         "--name", "another"], capture_output=True, text=True,
    )  # fmt: skip
    assert renamed.returncode == 1 and "its key ID depends on it" in renamed.stderr


def test_concurrent_requests_never_roll_the_witness_back(witness, log_key):
    log = Log(log_key).grow(40)
    assert witness.add(log.body(0, 10)).status_code == 200
    # many clients, each proving from 10 to a different size: one wins, the rest see 409
    bodies = [log.body(10, size) for size in range(11, 41)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(witness.add, bodies))
    won = [i for i, a in enumerate(answers) if a.status_code == 200]
    assert len(won) == 1, [a.status_code for a in answers]
    assert {a.status_code for a in answers} == {200, 409}
    assert witness.add(log.body(0)).text == f"{11 + won[0]}\n"


def test_a_split_view_is_refused_by_an_honest_witness(tmp_path, log_key):
    """The log's operator signs two trees of size 8 with one key: one shown to the
    regulator, one to an operator. Two honest witnesses cosign the first; the second,
    offered to either, is refused, at its size and when grown past it."""
    vkey = log_key.verifier.vkey()
    witnesses = [
        start_witness(tmp_path / "a", "witness.example.test/w1", vkey),
        start_witness(tmp_path / "b", "witness.example.test/w2", vkey),
    ]
    try:
        policy = WitnessPolicy.of([w.vkey for w in witnesses], 2)
        shown = Log(log_key, b"regulator's view").grow(8)
        other = Log(log_key, b"operator's view").grow(8)
        assert shown.note().text != other.note().text  # same size, another root
        signatures = []
        for w in witnesses:
            answer = w.add(shown.body(0))
            assert answer.status_code == 200, answer.text
            signatures += cosignatures(answer.content)
        assert len(policy.check(shown.note().text, signatures)) == 2
        at_eight = other.body(8)
        grown = other.grow(4).body(8)
        for w in witnesses:
            # at the same size: the witness already has another root for 8
            same = w.add(at_eight)
            assert same.status_code == 409 and same.text == "8\n"
            assert w.add(other.body(0)).text == "8\n"
            # grown past it: no proof of the other tree extends the cosigned one
            answer = w.add(grown)
            assert answer.status_code == 422, answer.text
        # the other view has no cosignature at all: a two-of-two policy fails on it
        with pytest.raises(PolicyError, match=r"0 of the 2 .* no cosignature from"):
            policy.check(other.note(8).text, [])
        # nor do the first view's cosignatures pass for it
        with pytest.raises(PolicyError, match="does not verify from"):
            policy.check(other.note(8).text, signatures)
    finally:
        for w in witnesses:
            w.stop()


def test_witness_policy_names_who_is_missing_and_who_is_bad(log_key):
    keys = [Signer(f"w{n}.example.test", Ed25519PrivateKey.generate(), 0x04) for n in range(3)]
    vkeys = [k.verifier.vkey() for k in keys]
    text = Log(log_key).grow(3).note().text
    lines = Note.parse(b"x\n\n" + keys[0].line(text.encode(), 1700000000).encode()).signatures
    assert WitnessPolicy.of(vkeys, 1).check(text, lines) == ["w0.example.test"]
    with pytest.raises(PolicyError, match=r"1 of the 2 .*no cosignature from w1\.example\.test, "):
        WitnessPolicy.of(vkeys, 2).check(text, lines)
    with pytest.raises(PolicyError, match=r"0 of the 1 .*does not verify from w0"):
        WitnessPolicy.of(vkeys[:1]).check(text.replace("3\n", "4\n"), lines)
    with pytest.raises(PolicyError, match="type 0x04"):
        WitnessPolicy.of([log_key.verifier.vkey()])
    with pytest.raises(PolicyError, match="3 keys given"):
        WitnessPolicy.of(vkeys, 4)


def test_verify_receipt_takes_a_witness_policy(tmp_path, log_key):
    """A receipt whose head's checkpoint two real witnesses cosigned passes a two-of-two
    policy; with one key wrong or one cosignature gone it fails, naming the witness."""
    import json

    from dataauth.audit.heads import sign_head
    from dataauth.audit.signing import Ed25519Signer

    vkey = log_key.verifier.vkey()
    witnesses = [
        start_witness(tmp_path / "a", "witness.example.test/w1", vkey),
        start_witness(tmp_path / "b", "witness.example.test/w2", vkey),
    ]
    try:
        log = Log(log_key).grow(6)
        note = log.note()
        for w in witnesses:
            note = note.with_signatures(cosignatures(w.add(log.body(0)).content))
    finally:
        for w in witnesses:
            w.stop()
    head_key = Ed25519Signer(Ed25519PrivateKey.generate())
    head = sign_head(head_key, 6, log.tree.root(), "2026-12-02T00:00:00.000000Z", "")
    receipt = {
        "index": 2,
        "leaf_hash": log.tree.leaf(2).hex(),
        "tree_size": 6,
        "proof": [p.hex() for p in log.tree.inclusion_proof(2, 6)],
        "tree_head": head.as_dict(),
        "checkpoint": note.serialise().decode(),
    }
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    keys = {"keys": [{"key_id": head_key.key_id, "algorithm": "Ed25519",
                      "public_key_pem": head_key.public_key_pem()}]}  # fmt: skip
    (tmp_path / "keys.json").write_text(json.dumps(keys))

    def verify(*policy: str, receipt: dict = receipt) -> subprocess.CompletedProcess[str]:
        (tmp_path / "receipt.json").write_text(json.dumps(receipt))
        return subprocess.run(
            [sys.executable, "-m", "dataauth.cli", "audit", "verify-receipt",
             str(tmp_path / "receipt.json"), "--keys", str(tmp_path / "keys.json"), *policy],
            capture_output=True, text=True,
        )  # fmt: skip

    both = [arg for w in witnesses for arg in ("--witness", w.vkey)]
    passed = verify(*both, "--witnesses-needed", "2")
    assert passed.returncode == 0, passed.stderr
    assert "witnessed by 2 of 2 trusted witnesses (2 needed)" in passed.stdout
    assert verify().returncode == 0  # no policy: as before
    stranger = Signer("witness.example.test/w3", Ed25519PrivateKey.generate(), 0x04)
    wrong = verify("--witness", witnesses[0].vkey, "--witness", stranger.verifier.vkey())
    assert wrong.returncode == 1
    assert "1 of the 2 witness cosignatures needed" in wrong.stderr
    assert "no cosignature from witness.example.test/w3" in wrong.stderr
    # one of two needed: the stranger may be missing
    assert verify("--witness", witnesses[0].vkey, "--witness", stranger.verifier.vkey(),
                  "--witnesses-needed", "1").returncode == 0  # fmt: skip
    dropped = Note(note.text, note.signatures[:2]).serialise().decode()
    missing = verify(*both, receipt={**receipt, "checkpoint": dropped})
    assert missing.returncode == 1
    assert "no cosignature from witness.example.test/w2" in missing.stderr
    unwitnessed = verify(*both, receipt={k: v for k, v in receipt.items() if k != "checkpoint"})
    assert "no checkpoint with cosignatures" in unwitnessed.stderr
    other = Log(log_key, b"other").grow(6).note().text
    swapped = Note(other, note.signatures).serialise().decode()
    assert (
        "checkpoint is of another tree"
        in verify(*both, receipt={**receipt, "checkpoint": swapped}).stderr
    )
    assert "needs the --witness keys" in verify("--witnesses-needed", "1").stderr
