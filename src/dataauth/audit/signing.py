"""Signatures over tree heads: a small interface, Ed25519 behind it.

A national-crypto deployment (SM2 with SM3) implements ``Signer`` and registers a
verifier in ``VERIFIERS``; nothing else changes. A key's id is the SHA-256 of its
public key (DER SubjectPublicKeyInfo), so an id names exactly one key whatever its
algorithm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
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


def public_key_id(public_key_pem: str) -> str:
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key_id_of(der)


def verify_signature(algorithm: str, public_key_pem: str, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``algorithm``'s signature of ``message``; never raises."""
    verifier = VERIFIERS.get(algorithm)
    if verifier is None:
        return False
    try:
        return verifier(public_key_pem, message, signature)
    except (ValueError, TypeError):
        return False
