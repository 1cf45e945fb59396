"""Witnesses, the parts both sides share: the c2sp.org/tlog-witness request body, and a
verifier's witness policy over c2sp.org/tlog-cosignature lines.

A witness cosigns a checkpoint only once it has checked it extends the last one it
cosigned for that origin, so a log that showed two parties two different trees of one
size cannot get both cosigned by one honest witness. A policy says which witness keys a
verifier trusts and how many of them must have cosigned the head it relies on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from dataauth.audit.note import COSIGNATURE_V1, Checkpoint, Note, NoteError, Signature, Verifier

MAX_PROOF_LINES = 63
"""tlog-witness: a client MUST NOT send more."""
MAX_BODY = 64 * 1024
"""An add-checkpoint body is a size line, 63 hashes and a note: a few KiB at most."""
SIZE_TYPE = "text/x.tlog.size"


class BadRequest(ValueError):
    """An add-checkpoint body that is not one (400)."""


@dataclass(frozen=True)
class AddCheckpoint:
    old: int
    proof: list[bytes]
    note: Note
    checkpoint: Checkpoint


def add_checkpoint_body(old: int, proof: Sequence[bytes], note: Note) -> bytes:
    """``old <size>``, the proof's hashes in base64, a blank line, the signed checkpoint."""
    lines = [f"old {old}", *(base64.b64encode(p).decode() for p in proof)]
    return ("\n".join(lines) + "\n\n").encode() + note.serialise()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body strictly; raise BadRequest on anything else."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes")
    head, sep, rest = body.partition(b"\n\n")
    if not sep:
        raise BadRequest("no blank line between the proof and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise BadRequest("the old size and proof lines must be ASCII") from None
    size = lines[0].removeprefix("old ")
    if size == lines[0] or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise BadRequest("the first line must be `old <size>`, a decimal without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            hashed = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            hashed = b""
        if len(hashed) != 32:
            raise BadRequest(f"line {number}: a proof line is one 32-byte hash in base64")
        proof.append(hashed)
    try:
        note = Note.parse(rest)
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise BadRequest(str(exc)) from None
    # old > size is a 400 too, but only after the signature: the witness checks that
    return AddCheckpoint(int(size), proof, note, checkpoint)


def cosignatures(response: bytes) -> list[Signature]:
    """The signature lines of a witness's 200 answer (checked later, against its key)."""
    try:
        return list(Note.parse(b"x\n\n" + response).signatures)
    except NoteError as exc:
        raise ValueError(f"not a witness's cosignature lines: {exc}") from None


class PolicyError(ValueError):
    """The witness policy is not met; the message names the witnesses missing or bad."""


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witness keys a verifier trusts, and how many must have cosigned."""

    witnesses: tuple[Verifier, ...]
    needed: int

    @classmethod
    def of(cls, vkeys: Sequence[str], needed: int | None = None) -> WitnessPolicy:
        """From vkeys (type 0x04); ``needed`` is all of them unless given."""
        try:
            witnesses = tuple(Verifier.from_vkey(v) for v in vkeys)
        except NoteError as exc:
            raise PolicyError(f"a witness key: {exc}") from None
        if any(w.key_type != COSIGNATURE_V1 for w in witnesses):
            raise PolicyError("a witness key must be a cosignature/v1 key (type 0x04)")
        if len({w.id for w in witnesses}) != len(witnesses):
            raise PolicyError("a witness key is given twice")
        count = len(witnesses) if needed is None else needed
        if not 0 <= count <= len(witnesses):
            raise PolicyError(f"{count} witnesses needed, but {len(witnesses)} keys given")
        return cls(witnesses, count)

    def check(self, checkpoint_text: str, signatures: Sequence[Signature]) -> list[str]:
        """The names of the trusted witnesses that cosigned ``checkpoint_text``; raise
        PolicyError, naming who is missing and whose signature is bad, if fewer than
        ``needed`` did. A signature by a key not in the policy is ignored."""
        text = checkpoint_text.encode()
        good, bad = [], []
        for witness in self.witnesses:
            lines = [s for s in signatures if s.name == witness.name and s.id == witness.id]
            if not lines:
                continue
            if all(witness.verify(text, s.signature) for s in lines):
                good.append(witness.name)
            else:
                bad.append(witness.name)
        if len(good) >= self.needed:
            return good
        missing = [w.name for w in self.witnesses if w.name not in good and w.name not in bad]
        said = [f"{len(good)} of the {self.needed} witness cosignatures needed"]
        if missing:
            said.append("no cosignature from " + ", ".join(missing))
        if bad:
            said.append("a cosignature that does not verify from " + ", ".join(bad))
        raise PolicyError("; ".join(said))
