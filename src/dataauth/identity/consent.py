"""Consent (授权): a subject's signed permission for one operator, purpose and products.

A consent token is a JWT (EdDSA or ES256) from a consent issuer the gateway trusts. It
names the subject by the keyed hash the gateway uses for it (never the raw key), the
operator, the purpose, the products, and an expiry; its ``jti`` is what a revocation
names. The gateway checks a token per subject, against this request; the audit entry
keeps the token's digest, not its content.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import jwt
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.canonical import rfc3339, utc_now
from dataauth.identity.dev_issuer import sign_dev_jwt
from dataauth.identity.keys import Keyring
from dataauth.store.statements import Prepared, insert_once, prepare

CONSENT_ALGORITHMS = ("EdDSA", "ES256")
MAX_TOKEN = 4096
VERIFIED = 16_384
"""Consent tokens kept verified, by digest: a batch that scores the same consented
subjects again checks each signature once, not once a request (a few MiB at most)."""


class ConsentRevocation(SQLModel, table=True):
    __tablename__ = "consent_revocation"

    jti: str = Field(primary_key=True)
    revoked_at: str
    revoked_by: str


def consent_digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class ConsentVerifier:
    def __init__(
        self, jwks: Callable[[], dict[str, Any]], issuer: str, db: Engine, leeway: int = 30
    ) -> None:
        self.issuer = issuer
        self.db = db
        self.leeway = leeway
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks().get("keys", []) if "kid" in k}
        self._verified: dict[bytes, dict[str, Any]] = {}

    def _revoked(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        # compiled once per batch size and run on the driver's connection: building and
        # keying a statement of 500 binds in SQLAlchemy cost more than reading it
        statement = self._revocations(len(ids))
        values = statement.bind({f"j{i}": jti for i, jti in enumerate(ids)})
        connection = self.db.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(statement.sql, values)
            return {row[0] for row in cursor.fetchall()}
        finally:
            connection.close()

    @lru_cache(maxsize=32)  # noqa: B019  (one verifier per gateway: the cache lives as long)
    def _revocations(self, size: int) -> Prepared:
        names = ", ".join(f":j{i}" for i in range(size))
        return prepare(self.db, text(f"SELECT jti FROM consent_revocation WHERE jti IN ({names})"))

    def _claims(self, token: str | None) -> dict[str, Any] | None:
        """The token's claims, if its signature, issuer and times hold. A token verified
        before is not verified again until it expires; revocation is read each time."""
        if not token or len(token) > MAX_TOKEN:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        claims = self._verified.get(digest)
        if claims is not None:
            return claims if time.time() < claims["exp"] + self.leeway else None
        claims = self._verify(token)
        if claims is not None:
            if len(self._verified) >= VERIFIED:
                self._verified = {}  # bounded: the next requests verify afresh
            self._verified[digest] = claims
        return claims

    def _verify(self, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None or header.get("alg") not in CONSENT_ALGORITHMS:
                return None
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub", "jti"], "verify_aud": False},
            )
        except jwt.PyJWTError:
            return None

    def missing(
        self,
        tokens: Sequence[str | None],
        subjects: Sequence[str],
        operator: str,
        purpose: str,
        product: str,
    ) -> list[int]:
        """Indexes of the subjects without a valid, unrevoked consent for this request."""
        claims = [self._claims(t) for t in tokens]
        revoked = self._revoked([c["jti"] for c in claims if c is not None])
        return [
            index
            for index, (c, subject) in enumerate(zip(claims, subjects, strict=True))
            if c is None
            or c["jti"] in revoked
            or c.get("sub") != subject
            or c.get("operator") != operator
            or c.get("purpose") != purpose
            or product not in (c.get("products") or [])
        ]

    def revoke(self, jti: str, by: str) -> None:
        insert_once(
            self.db,
            "INSERT INTO consent_revocation VALUES (:j, :t, :b)",
            {"j": jti, "t": rfc3339(utc_now()), "b": by},
        )


def issue_consent(
    keyring: Keyring,
    *,
    issuer: str,
    subject_hash: str,
    operator: str,
    purpose: str,
    products: Sequence[str],
    ttl_seconds: int = 86400,
) -> str:
    """A consent token from the development consent issuer (development and demo only)."""
    key = keyring.dev_consent_key()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject_hash,
        "operator": operator,
        "purpose": purpose,
        "products": list(products),
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return sign_dev_jwt(key, claims)
