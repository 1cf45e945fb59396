"""C2SP signed notes, checkpoints and cosignatures: the log's heads in the published form.

- c2sp.org/signed-note: a text, a blank line, then ``— <key name> base64(key ID ||
  signature)`` lines. Verifier keys travel as ``<name>+<hex key ID>+base64(type || key)``
  ("vkeys"), the form Go's ``golang.org/x/mod/sumdb/note`` reads.
- c2sp.org/tlog-checkpoint: the note text of a tree head (origin, size, base64 root).
- c2sp.org/tlog-cosignature: a witness's timestamped Ed25519 signature (type 0x04) over
  ``cosignature/v1``, ``time <t>`` and the checkpoint's text.

Any Go, Rust or JavaScript implementation of these formats reads what this module
writes; the tests check it against the Go package's published example.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_COSIGNATURE_HEADER = b"cosignature/v1\ntime %d\n"


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify."""


def key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"bad key name {name!r}: it must be non-empty, without spaces or '+'")
    return name


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("bad base64") from None


@dataclass(frozen=True)
class Verifier:
    """One trusted key: its name, type (0x01 note key, 0x04 witness) and raw public key."""

    name: str
    key_type: int
    public_key: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public_key)

    def vkey(self) -> str:
        material = base64.b64encode(bytes([self.key_type]) + self.public_key).decode()
        return f"{self.name}+{self.id.hex()}+{material}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``name+hexid+base64``; the ID must be the one the key implies."""
        name, _, rest = vkey.partition("+")
        hex_id, _, material = rest.partition("+")
        _check_name(name)
        if len(hex_id) != 8 or hex_id.lower() != hex_id:
            raise NoteError("bad verifier key: its ID must be 8 lowercase hex digits")
        raw = _b64decode(material)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError("bad verifier key: only Ed25519 (0x01, 0x04) keys are known")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.id.hex() != hex_id:
            raise NoteError("bad verifier key: its ID does not match its key")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (after the key ID) is this key's over ``text``."""
        message = text
        if self.key_type == COSIGNATURE_V1:
            if len(signature) != 72:
                return False
            message = _COSIGNATURE_HEADER % struct.unpack(">Q", signature[:8])[0] + text
            signature = signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 note key (0x01), or a witness's cosigning key (0x04)."""

    def __init__(self, name: str, key: Ed25519PrivateKey, key_type: int = ED25519) -> None:
        self.name = _check_name(name)
        self._key = key
        self.verifier = Verifier(name, key_type, _raw_public(key.public_key()))

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse Go's ``PRIVATE+KEY+name+hexid+base64(type || seed)``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("bad signer key: expected PRIVATE+KEY+name+id+key")
        raw = _b64decode(parts[4])
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("bad signer key: only Ed25519 keys are known")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.id.hex() != parts[3]:
            raise NoteError("bad signer key: its ID does not match its key")
        return signer

    def sign(self, text: bytes, timestamp: int = 0) -> bytes:
        """The signature line's bytes after the key ID (a cosignature carries its time)."""
        if self.verifier.key_type == COSIGNATURE_V1:
            stamp = struct.pack(">Q", timestamp)
            return stamp + self._key.sign(_COSIGNATURE_HEADER % timestamp + text)
        return self._key.sign(text)

    def line(self, text: bytes, timestamp: int = 0) -> str:
        blob = self.verifier.id + self.sign(text, timestamp)
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Signature:
    name: str
    id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.id + self.signature).decode()}\n"

    def timestamp(self) -> int:
        """A cosignature's POSIX time (its first 8 bytes)."""
        return struct.unpack(">Q", self.signature[:8])[0] if len(self.signature) >= 8 else 0


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def serialise(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    def with_signatures(self, more: Iterable[Signature]) -> Note:
        """The note with ``more`` added, a key's second signature dropped."""
        seen = {(s.name, s.id) for s in self.signatures}
        added = [s for s in more if (s.name, s.id) not in seen]
        return Note(self.text, self.signatures + tuple(added))

    @classmethod
    def parse(cls, data: bytes) -> Note:
        try:
            whole = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not UTF-8") from None
        if any(ord(ch) < 0x20 and ch != "\n" for ch in whole):
            raise NoteError("malformed note: control characters")
        split = whole.rfind("\n\n")
        if split < 0 or not whole.endswith("\n"):
            raise NoteError("malformed note: no blank line before the signatures")
        text, lines = whole[: split + 1], whole[split + 2 :].splitlines()
        if not lines or len(lines) > MAX_SIGNATURES:
            raise NoteError("malformed note: between 1 and 100 signatures")
        return cls(text, tuple(_signature(line) for line in lines))

    def open(self, verifiers: Iterable[Verifier]) -> list[Verifier]:
        """The known keys whose signatures verify; raises if none does or one fails."""
        known = {(v.name, v.id): v for v in verifiers}
        good: list[Verifier] = []
        for sig in self.signatures:
            verifier = known.get((sig.name, sig.id))
            if verifier is None:
                continue  # the spec: unknown keys are ignored, never trusted
            if not verifier.verify(self.text.encode(), sig.signature):
                raise NoteError(f"the signature of {sig.name} does not verify")
            good.append(verifier)
        if not good:
            raise NoteError("no signature from a known key")
        return good


def _signature(line: str) -> Signature:
    if not line.startswith(_DASH):
        raise NoteError("malformed note: a signature line must start with an em dash")
    name, _, blob = line[len(_DASH) :].rpartition(" ")
    raw = _b64decode(blob)
    if len(raw) < 5:
        raise NoteError("malformed note: a signature too short")
    return Signature(_check_name(name), raw[:4], raw[4:])


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    def sign(self, signer: Signer) -> Note:
        text = self.text()
        blob = signer.line(text.encode())
        return Note(text, (_signature(blob.rstrip("\n")),))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("malformed checkpoint: origin, size and root, each on a line")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("malformed checkpoint: the size must be a decimal integer")
        raw = _b64decode(root)
        if len(raw) != 32:
            raise NoteError("malformed checkpoint: the root must be 32 bytes")
        return cls(origin, int(size), raw, tuple(lines[3:-1]))
