"""The log's C2SP identity: its origin, and the Ed25519 note key that signs checkpoints.

Every signed tree head is also a checkpoint (c2sp.org/tlog-checkpoint) in a signed note
(c2sp.org/signed-note), so that a tlog client, a witness or a monitor that knows nothing
of ``dataauth`` can check the log. A public log's checkpoint must carry an Ed25519
signature by the log, whatever else signs its heads.

The origin names the log: the first line of each checkpoint and the name of the note
key. It is ``DATAAUTH_LOG_ORIGIN`` where set; else the origin the log's newest checkpoint
already has (so it survives a key rotation); else, for a new log, one derived from the
note key: ``dataauth/<the first 16 hex digits of the key's id>``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from dataauth.audit.note import Checkpoint, Note, NoteError, Signer
from dataauth.audit.signing import Ed25519Signer, public_key_id
from dataauth.audit.signing import Signer as HeadSigner
from dataauth.identity.keys import load_or_create_ed25519

NOTE_KEY_FILE = "checkpoint-note.ed25519.pem"
"""The note key where the head signer is not Ed25519 (an SM2 head signer, say)."""


def note_key(head_signer: HeadSigner, keys_dir: Path) -> Ed25519PrivateKey:
    """The Ed25519 key that signs checkpoints: the head signer's own key when that is an
    Ed25519 key, so one key file stands for the log; otherwise a key of its own under
    ``keys_dir`` (generated, 0600, on first use)."""
    if isinstance(head_signer, Ed25519Signer):
        return head_signer.private_key
    return load_or_create_ed25519(keys_dir / NOTE_KEY_FILE)


def derived_origin(key: Ed25519PrivateKey) -> str:
    pem = Ed25519Signer(key).public_key_pem()
    return f"dataauth/{public_key_id(pem)[:16]}"


def stored_origin(engine: Engine) -> str | None:
    """The origin of the newest stored checkpoint, if there is one."""
    with engine.connect() as connection:
        note = connection.execute(
            text(
                "SELECT checkpoint FROM signed_tree_head WHERE checkpoint IS NOT NULL "
                "ORDER BY size DESC LIMIT 1"
            )
        ).scalar()
    if note is None:
        return None
    try:
        return Checkpoint.parse(Note.parse(bytes(note)).text).origin
    except NoteError:
        return None


def note_signer(
    engine: Engine, head_signer: HeadSigner, keys_dir: Path, origin: str | None = None
) -> Signer:
    """The checkpoints' note signer, named by the log's origin (see the module's doc)."""
    key = note_key(head_signer, keys_dir)
    return Signer(origin or stored_origin(engine) or derived_origin(key), key)


def checkpoint_note(signer: Signer, size: int, root: bytes) -> bytes:
    """The signed note of the checkpoint of (size, root): what ``/checkpoint`` serves."""
    return Checkpoint(signer.name, size, root).sign(signer).serialise()
