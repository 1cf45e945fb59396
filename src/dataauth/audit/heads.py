"""Signed tree heads: (size, root, time, key id, previous head) under a signature.

The signed message is a fixed prefix and the RFC 8785 canonical JSON of the head's
fields, so any verifier can rebuild it. Each head names the digest of the head before
it: a chain, so a head dropped from an export is noticed as a broken link.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from dataauth.audit.signing import Signer, verify_signature
from dataauth.canonical import canonical

PREFIX = b"dataauth tree head v1\n"


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    time: str
    key_id: str
    algorithm: str
    prev: str
    signature: bytes = b""

    def message(self) -> bytes:
        return PREFIX + canonical(
            {
                "algorithm": self.algorithm,
                "key_id": self.key_id,
                "prev": self.prev,
                "root": self.root.hex(),
                "size": self.size,
                "time": self.time,
            }
        )

    def digest(self) -> str:
        """What the next head names as ``prev``."""
        return hashlib.sha256(self.message() + self.signature).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root.hex(),
            "time": self.time,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "prev": self.prev,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TreeHead:
        """Parse a head; raises ValueError on anything malformed."""
        try:
            return cls(
                size=int(value["size"]),
                root=bytes.fromhex(value["root"]),
                time=str(value["time"]),
                key_id=str(value["key_id"]),
                algorithm=str(value["algorithm"]),
                prev=str(value["prev"]),
                signature=bytes.fromhex(value["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed tree head: {exc}") from None


def sign_head(signer: Signer, size: int, root: bytes, time: str, prev: str) -> TreeHead:
    unsigned = TreeHead(size, root, time, signer.key_id, signer.algorithm, prev)
    return TreeHead(**{**unsigned.__dict__, "signature": signer.sign(unsigned.message())})


def verify_head(head: TreeHead, public_keys: dict[str, str]) -> bool:
    """Whether the head's signature verifies under the key its id names."""
    pem = public_keys.get(head.key_id)
    return pem is not None and verify_signature(head.algorithm, pem, head.message(), head.signature)
