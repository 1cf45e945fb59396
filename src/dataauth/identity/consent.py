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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.canonical import rfc3339, utc_now
from dataauth.identity.dev_issuer import sign_dev_jwt
from dataauth.identity.keys import Keyring
from dataauth.store.statements import Prepared, fetch_all, insert_once, prepare

CONSENT_ALGORITHMS = ("EdDSA", "ES256")
MAX_TOKEN = 4096
VERIFIED = 16_384
"""Consent tokens kept verified, by digest: a batch that scores the same consented
subjects again checks each signature once, not once a request."""
VERIFIED_BYTES = 8 << 20
"""The kept tokens' length, at most: what a kept consent holds is read from its token,
so this bounds their memory even where every token is as long as ``MAX_TOKEN``."""


class ConsentRevocation(SQLModel, table=True):
    __tablename__ = "consent_revocation"

    jti: str = Field(primary_key=True)
    revoked_at: str
    revoked_by: str


def consent_digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Checked:
    """A request's consents, checked: the indexes of the subjects without a valid one,
    and each token's digest (None where none was given), which the audit entry keeps."""

    missing: list[int]
    digests: list[str | None]


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a verified token grants, as the checks of each use read it."""

    until: float
    """Its expiry, with the leeway: past it the token is refused, kept or not."""
    jti: str
    binding: tuple[Any, Any, Any]
    """Its subject, operator and purpose."""
    products: frozenset[str]


class ConsentVerifier:
    def __init__(
        self, jwks: Callable[[], dict[str, Any]], issuer: str, db: Engine, leeway: int = 30
    ) -> None:
        self.issuer = issuer
        self.db = db
        self.leeway = leeway
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks().get("keys", []) if "kid" in k}
        self._verified: dict[str, _Verified] = {}
        self._verified_bytes = 0

    def _revoked(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        # compiled once per batch size and run on the driver's connection: building and
        # keying a statement of 500 binds in SQLAlchemy cost more than reading it
        statement = self._revocations(len(ids))
        # positional binds are the ids in order (checked when compiled): no name per id
        values = ids if statement.order is not None else {f"j{i}": j for i, j in enumerate(ids)}
        return {row[0] for row in fetch_all(self.db, statement, values)}

    @lru_cache(maxsize=32)  # noqa: B019  (one verifier per gateway: the cache lives as long)
    def _revocations(self, size: int) -> Prepared:
        names = ", ".join(f":j{i}" for i in range(size))
        made = prepare(self.db, text(f"SELECT jti FROM consent_revocation WHERE jti IN ({names})"))
        if made.order is not None and made.order != tuple(f"j{i}" for i in range(size)):
            raise ValueError("the revocation statement's binds are not in order")
        return made

    def check(
        self,
        tokens: Sequence[str | None],
        subjects: Sequence[str],
        operator: str,
        purpose: str,
        product: str,
    ) -> Checked:
        """Which subjects lack a valid, unrevoked consent for this request, and each
        token's digest for the log: one SHA-256 a token, which also keys the tokens
        verified before. A token verified before is not verified again until it
        expires; its revocation is read every time."""
        now = time.time()
        verified = self._verified
        digests: list[str | None] = []
        held: list[_Verified | None] = []
        for token in tokens:
            if not token:
                digests.append(None)
                held.append(None)
                continue
            digest = consent_digest(token)
            digests.append(digest)
            entry = verified.get(digest)
            if entry is None:
                entry = self._verify(token, digest)
            held.append(entry if entry is not None and now < entry.until else None)
        revoked = self._revoked([e.jti for e in held if e is not None])
        missing = [
            index
            for index, (e, subject) in enumerate(zip(held, subjects, strict=True))
            if e is None
            or e.jti in revoked
            or e.binding != (subject, operator, purpose)
            or product not in e.products
        ]
        return Checked(missing, digests)

    def _verify(self, token: str, digest: str) -> _Verified | None:
        """The token's claims, if its signature, issuer and times hold; kept by digest."""
        if len(token) > MAX_TOKEN:
            return None
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None or header.get("alg") not in CONSENT_ALGORITHMS:
                return None
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub", "jti"], "verify_aud": False},
            )
        except jwt.PyJWTError:
            return None
        products = claims.get("products") or []
        entry = _Verified(
            until=claims["exp"] + self.leeway,
            jti=claims["jti"],
            binding=(claims.get("sub"), claims.get("operator"), claims.get("purpose")),
            products=frozenset(p for p in products if isinstance(p, str))
            if isinstance(products, list)
            else frozenset(),
        )
        if len(self._verified) >= VERIFIED or self._verified_bytes + len(token) > VERIFIED_BYTES:
            # bounded: emptied, and the next requests verify afresh (an LRU's bookkeeping
            # would cost every use; a batch refills what it needs in one request)
            self._verified = {}
            self._verified_bytes = 0
        self._verified[digest] = entry
        self._verified_bytes += len(token)
        return entry

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
