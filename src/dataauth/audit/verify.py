"""Offline verification of an export: it needs no gateway, no database, no network.

Checks, stopping at the first failure and naming where it is:
- every key's id is the SHA-256 of the key;
- every tree head's signature, and the chain (each head names the digest of the one
  before, so a dropped or altered head breaks a link);
- where the signing key changes between two heads, a key change signed by the old key
  (a rotation) or the new one (a revocation, reported) is among the entries between;
- every entry's line holds its own index (a dropped, inserted or moved entry is named);
- the root recomputed from the entries equals every signed head's root; where it does
  not, the leaf list (itself checked against the head) names the altered entry;
- every bundle file's content has the digest its name claims, and every bundle an
  entry names is there;
- given the TSA's roots, every RFC 3161 time-stamp (``audit.timestamps.check_stamps``):
  signed under those roots, over the head it names, not dated before that head; and,
  given a gap, that no head went unstamped for longer;
- every head's C2SP checkpoint (where the export carries them, all heads) holds the
  head's size and root and verifies under one of the log's note keys (vkeys);
- under a witness policy, the last head's checkpoint (its size and root) carries the
  cosignatures the policy needs (``check_witnessed``).

A log fetched over HTTP as tiles (``audit/tileverify.py``) gets the same entry checks
(``EntryChecks``) and the same checkpoint check (``open_checkpoint``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from dataauth.audit.export import BUNDLE_REF, FORMAT
from dataauth.audit.heads import TreeHead, verify_head
from dataauth.audit.merkle import Frontier, verify_inclusion
from dataauth.audit.note import Checkpoint, Note, NoteError, Verifier
from dataauth.audit.rotation import MARK, verify_change
from dataauth.audit.signing import public_key_id
from dataauth.audit.timestamps import StampReport, TimestampError, check_stamps
from dataauth.audit.witnesses import PolicyError, WitnessPolicy
from dataauth.canonical import utc_now


class Failed(Exception):
    """Verification failed; the message says where and what."""


@dataclass
class Report:
    entries: int = 0
    heads: int = 0
    keys: int = 0
    bundles: int = 0
    first: int = 0
    last_head: dict[str, Any] = field(default_factory=dict)
    stamps: StampReport = field(default_factory=StampReport)
    key_changes: list[dict[str, Any]] = field(default_factory=list)
    """Each logged key change the heads follow, with the index of its entry."""
    checkpoints: int = 0
    witnessed: list[str] = field(default_factory=list)
    """The policy's witnesses that cosigned the last head."""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Failed(f"{path.name} is missing from the export") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Failed(f"{path.name} is not valid JSON: {exc}") from None


def load_keys(value: Any) -> dict[str, str]:
    """Public keys by id, each id checked against its key."""
    keys: dict[str, str] = {}
    for item in value.get("keys", []) if isinstance(value, dict) else []:
        try:
            key_id, pem = item["key_id"], item["public_key_pem"]
            if public_key_id(pem) != key_id:
                raise Failed(f"key {key_id}: the id is not the SHA-256 of the key")
        except (KeyError, TypeError, ValueError):
            raise Failed("keys.json holds a malformed key") from None
        keys[key_id] = pem
    return keys


def load_vkeys(vkeys: Any) -> list[Verifier]:
    """Note keys (``name+hexid+base64``), each id checked against its key."""
    if not isinstance(vkeys, list):
        raise Failed("the note keys (vkeys) must be a list")
    try:
        return [Verifier.from_vkey(str(vkey)) for vkey in vkeys]
    except NoteError as exc:
        raise Failed(f"a note key: {exc}") from None


def open_checkpoint(note: bytes, verifiers: list[Verifier]) -> Checkpoint:
    """The checkpoint in a signed note, its signature verified under a key named by the
    checkpoint's own origin (as tlog clients require); raise Failed."""
    try:
        parsed = Note.parse(note)
        checkpoint = Checkpoint.parse(parsed.text)
        parsed.open(v for v in verifiers if v.name == checkpoint.origin)
    except NoteError as exc:
        raise Failed(f"checkpoint: {exc}") from None
    return checkpoint


def check_checkpoint(head: TreeHead, note: Any, verifiers: list[Verifier]) -> None:
    """A head's checkpoint: its size and root the head's, its note signature good."""
    where = f"tree head at size {head.size}"
    if not isinstance(note, str):
        raise Failed(f"{where}: its checkpoint is missing")
    try:
        checkpoint = open_checkpoint(note.encode(), verifiers)
    except Failed as exc:
        raise Failed(f"{where}: {exc}") from None
    if (checkpoint.size, checkpoint.root) != (head.size, head.root):
        raise Failed(f"{where}: its checkpoint is of another tree (size {checkpoint.size})")


class EntryChecks:
    """What each entry is checked for, read from an export or from a log's tiles: it
    holds its own index, and every policy bundle it names is at hand (``bundles`` None:
    none are, as over HTTP; the digests named are collected)."""

    def __init__(self, bundles: set[str] | None) -> None:
        self.bundles = bundles
        self.named: set[str] = set()

    def leaf(self, index: int, line: bytes) -> bytes:
        """The entry's leaf hash, once its checks pass; raise Failed."""
        if not line.endswith(b',"index":%d}' % index):
            raise Failed(f"entry {index}: the line is not entry {index} (one is missing, "
                         "moved or inserted)")  # fmt: skip
        for found in BUNDLE_REF.findall(line):
            digest = found.decode()
            if self.bundles is not None and digest not in self.bundles:
                raise Failed(f"entry {index}: policy bundle {digest} is not in the export")
            self.named.add(digest)
        return hashlib.sha256(b"\x00" + line).digest()


def load_heads(value: Any, keys: dict[str, str]) -> list[TreeHead]:
    if not isinstance(value, list):
        raise Failed("heads.json must be a list of tree heads")
    heads: list[TreeHead] = []
    for position, item in enumerate(value):
        try:
            head = TreeHead.from_dict(item)
        except ValueError as exc:
            raise Failed(f"tree head {position}: {exc}") from None
        where = f"tree head at size {head.size}"
        if not verify_head(head, keys):
            raise Failed(f"{where}: its signature does not verify")
        if heads and head.size <= heads[-1].size:
            raise Failed(f"{where}: sizes must grow (follows size {heads[-1].size})")
        if heads and head.prev != heads[-1].digest():
            raise Failed(
                f"{where}: does not follow the head at size {heads[-1].size} "
                "(a head between them is missing or altered)"
            )
        heads.append(head)
    return heads


def check_bundles(directory: Path) -> set[str]:
    """Digests of the bundle files, each checked against its content."""
    found: set[str] = set()
    for path in sorted((directory / "bundles").glob("*.json")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != path.stem:
            raise Failed(f"bundle {path.stem}: its content has digest {digest}")
        found.add(f"sha256:{digest}")
    return found


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            for line in handle:
                yield line.rstrip(b"\n")
    except FileNotFoundError:
        raise Failed(f"{path.name} is missing from the export") from None


def _optional_json(path: Path) -> Any:
    return _json(path) if path.exists() else None


def _exported_at(manifest: dict[str, Any]) -> datetime:
    """When the export was made, as it says, but never later than now."""
    try:
        return min(datetime.fromisoformat(str(manifest.get("exported_at"))), utc_now())
    except (TypeError, ValueError):
        return utc_now()


def check_witnessed(head: TreeHead, checkpoint: Any, policy: WitnessPolicy) -> list[str]:
    """The witnesses of ``policy`` that cosigned ``head``: ``checkpoint`` is the head as a
    signed note (its size and root must be the head's); raise Failed, naming who is
    missing or bad, where the policy is not met."""
    where = f"tree head at size {head.size}"
    if not isinstance(checkpoint, str):
        raise Failed(f"{where}: no checkpoint with cosignatures, and a witness policy is set")
    try:
        note = Note.parse(checkpoint.encode())
        parsed = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise Failed(f"{where}: its checkpoint is malformed: {exc}") from None
    if (parsed.size, parsed.root) != (head.size, head.root):
        raise Failed(f"{where}: its checkpoint is of another tree (size {parsed.size})")
    try:
        return policy.check(note.text, note.signatures)
    except PolicyError as exc:
        raise Failed(f"{where}: the witness policy is not met: {exc}") from None


def verify_export(
    directory: Path,
    progress: Callable[[int, int], None] | None = None,
    tsa_roots: list[x509.Certificate] | None = None,
    max_stamp_gap: float | None = None,
    vkeys: list[Verifier] | None = None,
    policy: WitnessPolicy | None = None,
) -> Report:
    """Verify the export in ``directory``; raise Failed at the first problem. With
    ``tsa_roots`` (certificates), its time-stamps too; with ``max_stamp_gap``, that
    each head was stamped within that many seconds. With ``vkeys`` (the log's note keys,
    as its operator published them) every head must carry a checkpoint that verifies
    under one of them, not under the export's own list. With ``policy``, the last
    head must carry the cosignatures it needs."""
    manifest = _json(directory / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Failed(f"manifest.json is not a {FORMAT} manifest")
    start, end = manifest.get("from"), manifest.get("to")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
        raise Failed("manifest.json: from and to must be entry indexes, from < to")
    listed = _json(directory / "keys.json")
    keys = load_keys(listed)
    raw_heads = _json(directory / "heads.json")
    heads = load_heads(raw_heads, keys)
    checkpoints = 0
    if vkeys is not None or manifest.get("checkpoints"):  # older exports carry none
        verifiers = vkeys if vkeys is not None else load_vkeys(listed.get("vkeys"))
        for head, item in zip(heads, raw_heads, strict=True):
            check_checkpoint(head, item.get("checkpoint"), verifiers)
        checkpoints = len(heads)
    if not heads:
        raise Failed("the export holds no signed tree head")
    witnessed = []
    if policy is not None:
        witnessed = check_witnessed(heads[-1], raw_heads[-1].get("checkpoint"), policy)
    if start == 0 and heads[0].prev != "":
        raise Failed(f"tree head at size {heads[0].size}: an earlier head is missing")
    if heads[-1].size != end:
        raise Failed(
            f"the last tree head covers {heads[-1].size} entries; the export ends at {end}"
        )
    bundles = check_bundles(directory)
    try:
        stamps = check_stamps(
            _optional_json(directory / "timestamps.json"),
            heads,
            tsa_roots,
            max_stamp_gap,
            _exported_at(manifest),
        )
    except TimestampError as exc:
        raise Failed(str(exc)) from None
    checks = EntryChecks(bundles)

    try:
        frontier = Frontier(start, [bytes.fromhex(h) for h in manifest.get("frontier", [])])
        recorded = Frontier(start, [bytes.fromhex(h) for h in manifest.get("frontier", [])])
    except (ValueError, TypeError):
        raise Failed("manifest.json: the frontier is malformed") from None
    pending = [h for h in heads if h.size > start]
    if start > 0 and (heads[0].size != start or frontier.root() != heads[0].root):
        raise Failed(f"the frontier at {start} does not match a signed tree head")
    leaves = _lines(directory / "leaves.txt")
    previous = heads[0] if start > 0 else None
    changes: list[tuple[int, dict[str, Any]]] = []  # key changes logged since ``previous``
    followed: list[dict[str, Any]] = []
    first_changed: int | None = None
    index = start
    for line in _lines(directory / "entries.jsonl"):
        if index >= end:
            raise Failed(f"entry {index}: the export holds more entries than its heads cover")
        leaf = checks.leaf(index, line)
        if MARK in line:
            changes.append((index, _operation(line)))
        frontier.append(leaf)
        listed_leaf = next(leaves, b"")
        try:
            recorded.append(bytes.fromhex(listed_leaf.decode()))
        except ValueError:
            recorded.append(b"\x00" * 32)
        if first_changed is None and listed_leaf != leaf.hex().encode():
            first_changed = index
        index += 1
        if pending and index == pending[0].size:
            head = pending.pop(0)
            if frontier.root() != head.root:
                if first_changed is not None and recorded.root() == head.root:
                    raise Failed(f"entry {first_changed}: its content is not what the "
                                 f"tree head at size {head.size} signed")  # fmt: skip
                raise Failed(f"tree head at size {head.size}: its root does not match the "
                             "entries it covers")  # fmt: skip
            if previous is not None and head.key_id != previous.key_id:
                followed.append(_key_change(changes, previous, head, keys))
            previous, changes = head, []
        if progress and index % 50_000 == 0:
            progress(index - start, end - start)
    if index != end:
        raise Failed(f"the export ends at entry {index}, but its tree heads cover {end}")
    return Report(
        index - start,
        len(heads),
        len(keys),
        len(bundles),
        start,
        heads[-1].as_dict(),
        stamps=stamps,
        key_changes=followed,
        checkpoints=checkpoints,
        witnessed=witnessed,
    )


def _operation(line: bytes) -> dict[str, Any]:
    """The operation of an entry that looks like a key change; {} if it is not one (an
    altered line is then named by the root check)."""
    try:
        operation = json.loads(line)["entry"]["operation"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return {}
    return operation if isinstance(operation, dict) else {}


def _key_change(
    changes: list[tuple[int, dict[str, Any]]],
    before: TreeHead,
    after: TreeHead,
    keys: dict[str, str],
) -> dict[str, Any]:
    """The signed change from ``before``'s key to ``after``'s among ``changes``."""
    for index, change in changes:
        if verify_change(change, before, after, keys):
            return {"entry": index, "reason": change["reason"], "from_key_id": before.key_id,
                    "to_key_id": after.key_id, "to_algorithm": after.algorithm}  # fmt: skip
    raise Failed(
        f"tree head at size {after.size}: signed by key {after.key_id} ({after.algorithm}), "
        f"but no key change from key {before.key_id} signed by either key is logged "
        f"after the head at size {before.size}"
    )


def retired_keys(value: Any) -> dict[str, int]:
    """The keys a logged key change retired, by id, each with the size of the last head
    it signed (``last_size`` in keys.json)."""
    retired: dict[str, int] = {}
    for item in value.get("keys", []) if isinstance(value, dict) else []:
        if isinstance(item, dict) and "last_size" in item:
            try:
                retired[str(item["key_id"])] = int(item["last_size"])
            except (KeyError, TypeError, ValueError):
                raise Failed("keys.json holds a malformed last_size") from None
    return retired


def verify_receipt(
    receipt: dict[str, Any],
    keys: dict[str, str],
    policy: WitnessPolicy | None = None,
    retired: dict[str, int] | None = None,
) -> list[str]:
    """Check one receipt (as ``GET /v1/audit/proof/inclusion`` gives it); raise Failed.
    A head signed by a retired key past the last head it signed is refused: a rotated
    or revoked key (one that may have been lost) cannot vouch for a later tree. Under a
    witness policy, its ``checkpoint`` must carry the cosignatures needed; returns the
    names of the policy's witnesses that cosigned."""
    try:
        head = TreeHead.from_dict(receipt["tree_head"])
        index, size = int(receipt["index"]), int(receipt["tree_size"])
        leaf = bytes.fromhex(receipt["leaf_hash"])
        proof = [bytes.fromhex(p) for p in receipt["proof"]]
    except (KeyError, TypeError, ValueError):
        raise Failed("the receipt is malformed") from None
    if not verify_head(head, keys):
        raise Failed(f"tree head at size {head.size}: its signature does not verify")
    last = (retired or {}).get(head.key_id)
    if last is not None and head.size > last:
        raise Failed(
            f"tree head at size {head.size}: signed by key {head.key_id[:16]}…, which a key "
            f"change retired after the head at size {last}: no later head of this log is its"
        )
    if head.size != size:
        raise Failed(f"the receipt's tree size {size} is not its head's size {head.size}")
    if not verify_inclusion(leaf, index, size, proof, head.root):
        raise Failed(f"entry {index} is not in the tree of size {size} by this proof")
    if policy is None:
        return []
    return check_witnessed(head, receipt.get("checkpoint"), policy)
