"""Offline verification of an export: it needs no gateway, no database, no network.

Checks, stopping at the first failure and naming where it is:
- every key's id is the SHA-256 of the key;
- every tree head's signature, and the chain (each head names the digest of the one
  before, so a dropped or altered head breaks a link);
- every entry's line holds its own index (a dropped, inserted or moved entry is named);
- the root recomputed from the entries equals every signed head's root; where it does
  not, the leaf list (itself checked against the head) names the altered entry;
- every bundle file's content has the digest its name claims, and every bundle an
  entry names is there;
- under a witness policy, the last head's checkpoint (its size and root) carries the
  cosignatures the policy needs (``check_witnessed``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataauth.audit.export import BUNDLE_REF, FORMAT
from dataauth.audit.heads import TreeHead, verify_head
from dataauth.audit.merkle import Frontier, verify_inclusion
from dataauth.audit.note import Checkpoint, Note, NoteError
from dataauth.audit.signing import public_key_id
from dataauth.audit.witnesses import PolicyError, WitnessPolicy


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
    policy: WitnessPolicy | None = None,
) -> Report:
    """Verify the export in ``directory``; raise Failed at the first problem."""
    manifest = _json(directory / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Failed(f"manifest.json is not a {FORMAT} manifest")
    start, end = manifest.get("from"), manifest.get("to")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
        raise Failed("manifest.json: from and to must be entry indexes, from < to")
    keys = load_keys(_json(directory / "keys.json"))
    listed_heads = _json(directory / "heads.json")
    heads = load_heads(listed_heads, keys)
    if not heads:
        raise Failed("the export holds no signed tree head")
    witnessed = []
    if policy is not None:
        witnessed = check_witnessed(heads[-1], listed_heads[-1].get("checkpoint"), policy)
    if start == 0 and heads[0].prev != "":
        raise Failed(f"tree head at size {heads[0].size}: an earlier head is missing")
    if heads[-1].size != end:
        raise Failed(
            f"the last tree head covers {heads[-1].size} entries; the export ends at {end}"
        )
    bundles = check_bundles(directory)

    try:
        frontier = Frontier(start, [bytes.fromhex(h) for h in manifest.get("frontier", [])])
        recorded = Frontier(start, [bytes.fromhex(h) for h in manifest.get("frontier", [])])
    except (ValueError, TypeError):
        raise Failed("manifest.json: the frontier is malformed") from None
    pending = [h for h in heads if h.size > start]
    if start > 0 and (heads[0].size != start or frontier.root() != heads[0].root):
        raise Failed(f"the frontier at {start} does not match a signed tree head")
    leaves = _lines(directory / "leaves.txt")
    first_changed: int | None = None
    index = start
    for line in _lines(directory / "entries.jsonl"):
        if index >= end:
            raise Failed(f"entry {index}: the export holds more entries than its heads cover")
        if not line.endswith(b',"index":%d}' % index):
            raise Failed(f"entry {index}: the line is not entry {index} (one is missing, "
                         "moved or inserted)")  # fmt: skip
        for digest in BUNDLE_REF.findall(line):
            if digest.decode() not in bundles:
                raise Failed(f"entry {index}: policy bundle {digest.decode()} is not in the export")
        leaf = hashlib.sha256(b"\x00" + line).digest()
        frontier.append(leaf)
        listed = next(leaves, b"")
        try:
            recorded.append(bytes.fromhex(listed.decode()))
        except ValueError:
            recorded.append(b"\x00" * 32)
        if first_changed is None and listed != leaf.hex().encode():
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
        if progress and index % 50_000 == 0:
            progress(index - start, end - start)
    if index != end:
        raise Failed(f"the export ends at entry {index}, but its tree heads cover {end}")
    return Report(
        index - start, len(heads), len(keys), len(bundles), start, heads[-1].as_dict(), witnessed
    )


def verify_receipt(
    receipt: dict[str, Any], keys: dict[str, str], policy: WitnessPolicy | None = None
) -> list[str]:
    """Check one receipt (as ``GET /v1/audit/proof/inclusion`` gives it); raise Failed.
    Under a witness policy, its ``checkpoint`` must carry the cosignatures needed;
    returns the names of the policy's witnesses that cosigned."""
    try:
        head = TreeHead.from_dict(receipt["tree_head"])
        index, size = int(receipt["index"]), int(receipt["tree_size"])
        leaf = bytes.fromhex(receipt["leaf_hash"])
        proof = [bytes.fromhex(p) for p in receipt["proof"]]
    except (KeyError, TypeError, ValueError):
        raise Failed("the receipt is malformed") from None
    if not verify_head(head, keys):
        raise Failed(f"tree head at size {head.size}: its signature does not verify")
    if head.size != size:
        raise Failed(f"the receipt's tree size {size} is not its head's size {head.size}")
    if not verify_inclusion(leaf, index, size, proof, head.root):
        raise Failed(f"entry {index} is not in the tree of size {size} by this proof")
    if policy is None:
        return []
    return check_witnessed(head, receipt.get("checkpoint"), policy)
