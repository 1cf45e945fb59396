"""Which key signs the tree heads, and the logged, signed steps that change it.

The setting ``audit_signing`` (ed25519 or sm2) picks the signer. When it names another
key than the one that signed the last head, the gateway logs a key change before it
signs again, as an entry of the log itself (so the next head covers it):

- a rotation, signed by the old key: the old key vouches for the new one. The gateway
  writes it at start when the old key's file is still under ``keys/``;
- a revocation, signed by the new key (``dataauth audit revoke-key``), for an old key
  that is lost or must no longer be trusted: it cannot vouch, so the new key's trust
  rests on the operator's word (``/v1/audit/keys``), as the first key's does.

Either names the old and new key ids and the digest of the last head the old key
signed, so it belongs to one point of one log. Offline verification refuses a head
signed by another key than the head before it unless such a step lies between them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dataauth.audit.heads import TreeHead
from dataauth.audit.ledger import Ledger
from dataauth.audit.log import AuditLog, Record
from dataauth.audit.signing import Ed25519Signer, Signer, verify_signature
from dataauth.audit.sm2 import SM2Signer
from dataauth.canonical import canonical, utc_now

KIND = "audit.key_change"
MARK = b'"kind":"audit.key_change"'
"""How a verifier spots a key change in an entry's bytes without parsing every entry."""
PREFIX = b"dataauth key change v1\n"
ACTOR = "gateway"

SIGNERS: dict[str, Callable[[Path], Signer]] = {
    "ed25519": Ed25519Signer.from_keys_dir,
    "sm2": SM2Signer.from_keys_dir,
}
KEY_FILES = {"ed25519": "audit-signing.ed25519.pem", "sm2": "audit-signing.sm2.pem"}


class KeyChangeRefused(RuntimeError):
    """The signing key cannot change as asked; the message says what to do."""


def load_signer(name: str, keys_dir: Path) -> Signer:
    """The ``name`` signer's key under ``keys_dir``, generated on first use."""
    return SIGNERS[name](keys_dir)


def held_signer(keys_dir: Path, key_id: str) -> Signer | None:
    """The signer of ``key_id`` if its private key is under ``keys_dir``; creates none."""
    for name, file in KEY_FILES.items():
        if (keys_dir / file).exists():
            signer = load_signer(name, keys_dir)
            if signer.key_id == key_id:
                return signer
    return None


def message(change: dict[str, Any]) -> bytes:
    """The bytes a key change's signature covers: all of it but the signature."""
    return PREFIX + canonical({k: v for k, v in change.items() if k != "signature"})


def verify_change(
    change: dict[str, Any], before: TreeHead, after: TreeHead, keys: dict[str, str]
) -> bool:
    """Whether ``change`` is a signed step from ``before``'s key to ``after``'s."""
    if (
        change.get("kind") != KIND
        or change.get("from_key_id") != before.key_id
        or change.get("to_key_id") != after.key_id
        or change.get("after") != before.digest()
    ):
        return False
    signed_by = {"rotation": before, "revocation": after}.get(change.get("reason", ""))
    if signed_by is None or signed_by.key_id not in keys:
        return False
    try:
        signature = bytes.fromhex(str(change.get("signature")))
    except ValueError:
        return False
    return verify_signature(signed_by.algorithm, keys[signed_by.key_id], message(change), signature)


def _logged_since(ledger: Ledger, head: TreeHead, to_key_id: str) -> bool:
    """Whether a change from ``head``'s key to ``to_key_id`` is already logged after it."""
    start = head.size
    while batch := ledger.entries(start, 1000):
        for index, data, _ in batch:
            if MARK in data:
                change = json.loads(data)["entry"]["operation"]
                if change.get("to_key_id") == to_key_id and change.get("after") == head.digest():
                    return True
            start = index + 1
    return False


def _log(engine: Engine, change: dict[str, Any], policy_bundle: str) -> dict[str, Any]:
    AuditLog(engine).append(
        Record.action(
            utc_now(),
            ACTOR,
            change,
            policy_bundle,
            purpose="audit signing key change",
            request=canonical(change),
            outcome={"rotation": "rotated", "revocation": "revoked"}[change["reason"]],
        )
    )
    return change


def _change(reason: str, head: TreeHead, signer: Signer, by: Signer) -> dict[str, Any]:
    change = {
        "kind": KIND,
        "reason": reason,
        "from_key_id": head.key_id,
        "to_key_id": signer.key_id,
        "to_algorithm": signer.algorithm,
        "after": head.digest(),
    }
    return change | {"signature": by.sign(message(change)).hex()}


def rotate_to(engine: Engine, signer: Signer, keys_dir: Path, policy_bundle: str) -> dict | None:
    """Before ``signer`` signs its first head: log the rotation to it, signed by the key
    of the last head, unless that key is ``signer``'s or the change is logged. Raises
    KeyChangeRefused if the old key is not under ``keys_dir``."""
    ledger = Ledger(engine, signer)  # registers the new key, so an export carries it
    latest = ledger.latest_head()
    if (
        latest is None
        or latest.key_id == signer.key_id
        or _logged_since(ledger, latest, signer.key_id)
    ):
        return None
    old = held_signer(keys_dir, latest.key_id)
    if old is None:
        raise KeyChangeRefused(
            f"the last tree head was signed by key {latest.key_id}, whose private key is not "
            "under keys/: restore it, or revoke it (dataauth audit revoke-key)"
        )
    return _log(engine, _change("rotation", latest, signer, old), policy_bundle)


def revoke_last(engine: Engine, signer: Signer, policy_bundle: str) -> dict[str, Any]:
    """Log the revocation of the key of the last head, signed by ``signer``, which signs
    the heads from now on."""
    ledger = Ledger(engine, signer)
    latest = ledger.latest_head()
    if latest is None:
        raise KeyChangeRefused("no tree head is signed yet: there is no key to revoke")
    if latest.key_id == signer.key_id:
        raise KeyChangeRefused(
            f"key {latest.key_id} is the configured signer: configure another "
            "(DATAAUTH_AUDIT_SIGNING) before revoking it"
        )
    if _logged_since(ledger, latest, signer.key_id):
        raise KeyChangeRefused(f"a change from key {latest.key_id} is logged already")
    return _log(engine, _change("revocation", latest, signer, signer), policy_bundle)
