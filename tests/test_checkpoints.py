"""Checkpoints stored with the heads: the origin, the note key, heads of before."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from conftest import DATABASES, cluster
from dataauth.audit.checkpoints import NOTE_KEY_FILE, derived_origin, note_key, note_signer
from dataauth.audit.ledger import Ledger
from dataauth.audit.log import AuditLog, Record
from dataauth.audit.note import Checkpoint, Note
from dataauth.audit.signing import Ed25519Signer
from dataauth.canonical import utc_now
from dataauth.store.engine import gateway_engine


def _engine(tmp_path: Path, database: str = "sqlite") -> Engine:
    if database == "sqlite":
        return gateway_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    return gateway_engine(cluster().new_database())


def _append(engine: Engine, count: int) -> None:
    log = AuditLog(engine)
    for _ in range(count):
        log.append(Record.action(utc_now(), "someone", {"kind": "test"}, "sha256:" + "0" * 64,
                                 purpose="test", request=b"{}", outcome="published"))  # fmt: skip


@pytest.mark.parametrize("database", DATABASES)
def test_heads_signed_before_checkpoints_get_theirs_and_they_verify(
    tmp_path: Path, database: str
) -> None:
    engine, heads = _engine(tmp_path, database), Ed25519Signer.from_keys_dir(tmp_path / "keys")
    old = Ledger(engine, heads)  # as the gateway was: no note signer
    for count in (3, 2):
        _append(engine, count)
        assert old.sign_pending() is not None
    assert old.checkpoint() is None
    notes = note_signer(engine, heads, tmp_path / "keys")
    ledger = Ledger(engine, heads, notes)
    assert ledger.sign_missing_checkpoints() == 2
    assert ledger.sign_missing_checkpoints() == 0  # once
    for head in ledger.heads():
        note = Note.parse(ledger.checkpoint(head.size) or b"")
        assert note.open([notes.verifier])
        assert Checkpoint.parse(note.text) == Checkpoint(notes.name, head.size, head.root)
    _append(engine, 1)
    head = ledger.sign_pending()
    assert head is not None and ledger.checkpoint() == ledger.checkpoint(head.size)
    assert ledger.vkeys() == [notes.verifier.vkey()]
    # append-only, as the heads are
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text("UPDATE tree_head_checkpoint SET note = note"))
    engine.dispose()


def test_the_origin_is_the_setting_else_the_logs_own_else_derived(tmp_path: Path) -> None:
    engine, heads = _engine(tmp_path), Ed25519Signer.from_keys_dir(tmp_path / "keys")
    derived = note_signer(engine, heads, tmp_path / "keys")
    assert derived.name == derived_origin(heads.private_key) == f"dataauth/{heads.key_id[:16]}"
    named = note_signer(engine, heads, tmp_path / "keys", "gateway.example.gov.cn/audit")
    ledger = Ledger(engine, heads, named)
    _append(engine, 1)
    ledger.sign_pending()
    # a later start without the setting keeps the origin the log already has, even with
    # another key (a rotation must not make it another log)
    rotated = Ed25519Signer.from_keys_dir(tmp_path / "other-keys")
    assert note_signer(engine, rotated, tmp_path / "other-keys").name == named.name


class _OtherAlgorithm:
    """A head signer that is not Ed25519 (as an SM2 one is)."""

    algorithm, key_id = "SM2", "0" * 64


def test_a_head_signer_not_ed25519_gets_a_note_key_of_its_own(tmp_path: Path) -> None:
    heads = Ed25519Signer.from_keys_dir(tmp_path)
    assert note_key(heads, tmp_path) is heads.private_key
    assert not (tmp_path / NOTE_KEY_FILE).exists()
    own = note_key(_OtherAlgorithm(), tmp_path)  # type: ignore[arg-type]
    path = tmp_path / NOTE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = note_key(_OtherAlgorithm(), tmp_path)  # type: ignore[arg-type]
    raw = lambda k: Ed25519Signer(k).public_key_pem()  # noqa: E731
    assert raw(own) == raw(again) != raw(heads.private_key)
