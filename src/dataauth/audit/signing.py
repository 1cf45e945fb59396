"""Signatures over tree heads: a small interface, Ed25519 behind it.

Another algorithm implements ``Signer`` and registers a verifier in ``VERIFIERS``, as
SM2 with SM3 does (``audit/sm2.py``). A key's id is the SHA-256 of its public key (DER
SubjectPublicKeyInfo), so an id names exactly one key whatever its algorithm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dataauth.identity.keys import load_or_create_ed25519


class Signer(Protocol):
    algorithm: str
    key_id: str

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> str: ...


def key_id_of(public_key_der: bytes) -> str:
    return hashlib.sha256(public_key_der).hexdigest()


class Ed25519Signer:
    algorithm = "Ed25519"

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = key_id_of(der)

    @classmethod
    def from_keys_dir(cls, keys_dir: Path) -> Ed25519Signer:
        """The audit signing key under ``keys_dir``, generated (0600) on first use."""
        return cls(load_or_create_ed25519(keys_dir / "audit-signing.ed25519.pem"))

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """For the checkpoints' note signer, which signs with the same key."""
        return self._key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )


def _verify_ed25519(public_key_pem: str, message: bytes, signature: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


VERIFIERS: dict[str, Callable[[str, bytes, bytes], bool]] = {"Ed25519": _verify_ed25519}


def pem_der(pem: str, label: str = "PUBLIC KEY") -> bytes:
    """The DER inside one PEM block with ``label``; raises ValueError otherwise."""
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    text = pem.strip()
    if not (text.startswith(begin) and text.endswith(end)):
        raise ValueError(f"not a PEM {label}")
    try:
        return base64.b64decode(text[len(begin) : -len(end)])
    except binascii.Error:
        raise ValueError(f"not a PEM {label}") from None


def public_key_id(public_key_pem: str) -> str:
    """The id of a public key PEM of any algorithm: DER is one encoding per key, so the
    bytes in the PEM are what a signer hashed."""
    return key_id_of(pem_der(public_key_pem))


def verify_signature(algorithm: str, public_key_pem: str, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``algorithm``'s signature of ``message``; never raises."""
    verifier = VERIFIERS.get(algorithm)
    if verifier is None:
        return False
    try:
        return verifier(public_key_pem, message, signature)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a key of another algorithm
        return False
