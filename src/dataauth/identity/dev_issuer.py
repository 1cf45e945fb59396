"""The development issuer: tokens for local use and the demo, never for deployment.

Its key is generated under the data directory on first use. The gateway trusts it
only while no real issuer (a JWKS file or URL) is configured.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dataauth.identity.keys import Keyring, public_jwk


def issue_token(
    keyring: Keyring,
    *,
    subject: str,
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    roles: tuple[str, ...] = ("operator",),
    not_before: int | None = None,
) -> str:
    """A signed EdDSA token from the development issuer."""
    key = keyring.dev_issuer_key()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now if not_before is None else not_before,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "roles": list(roles),
    }
    return sign_dev_jwt(key, claims)


def sign_dev_jwt(key: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    """An EdDSA JWT whose kid is the key's RFC 7638 thumbprint, as its JWKS lists it."""
    return jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key.public_key())["kid"]}
    )
