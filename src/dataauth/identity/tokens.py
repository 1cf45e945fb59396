"""Operator tokens: Bearer JWTs signed with an asymmetric key by a trusted issuer.

Checked: size, header (alg, kid), signature, issuer, audience, expiry, not-before.
Refused outright: ``alg: none``, every HMAC algorithm (a public key used as an HMAC
secret is the classic confusion attack), keys the issuer's JWKS does not list, and
a key whose own type or algorithm differs from the token's header.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from dataauth.errors import unauthorized

ALGORITHMS = ("EdDSA", "ES256")
KEY_TYPES = {"EdDSA": "OKP", "ES256": "EC"}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the token's subject and roles."""

    subject: str
    roles: tuple[str, ...]
    expires: int


def jwks_from_file(path: Path) -> Callable[[], dict[str, Any]]:
    return lambda: json.loads(path.read_text(encoding="utf-8"))


def jwks_from_url(url: str, timeout: float = 5.0) -> Callable[[], dict[str, Any]]:
    import httpx

    def fetch() -> dict[str, Any]:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        return response.json()

    return fetch


class TokenVerifier:
    """Verifies Bearer tokens against one issuer's JWKS.

    A verified token is remembered until it expires (bounded LRU), so a client that
    reuses its token pays for the signature check once, not on every request.
    """

    def __init__(
        self,
        jwks: Callable[[], dict[str, Any]],
        *,
        issuer: str,
        audience: str,
        max_bytes: int = 8192,
        leeway: int = 30,
        refresh_seconds: float = 300.0,
    ) -> None:
        self._jwks_source = jwks
        self.issuer = issuer
        self.audience = audience
        self.max_bytes = max_bytes
        self.leeway = leeway
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_loaded = 0.0
        self._lock = threading.Lock()
        self._verified: OrderedDict[str, Caller] = OrderedDict()
        self._load_keys()

    def _load_keys(self) -> None:
        keys: dict[str, jwt.PyJWK] = {}
        for item in self._jwks_source().get("keys", []):
            kid, kty = item.get("kid"), item.get("kty")
            if not kid or kty not in KEY_TYPES.values():
                continue  # a key we would never accept is no key at all
            keys[kid] = jwt.PyJWK(item)
        with self._lock:
            self._keys = keys
            self._keys_loaded = time.monotonic()
            self._verified.clear()

    def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._keys_loaded > 10:
            # an unknown kid may mean the issuer rotated keys; look again, rarely
            try:
                self._load_keys()
            except Exception:
                return None
            key = self._keys.get(kid)
        return key

    def verify(self, authorization: str | None) -> Caller:
        """The caller named by an ``Authorization: Bearer`` header, or a 401 problem."""
        if not authorization:
            raise unauthorized("missing_token", "send an operator token: Authorization: Bearer")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("malformed_token", "the Authorization header is not a Bearer token")
        token = token.strip()
        if len(token) > self.max_bytes:
            raise unauthorized("token_too_large", f"the token is over {self.max_bytes} bytes")

        with self._lock:
            cached = self._verified.get(token)
        if cached is not None and cached.expires + self.leeway > time.time():
            return cached

        caller = self._verify_token(token)
        with self._lock:
            self._verified[token] = caller
            if len(self._verified) > 10_000:
                self._verified.popitem(last=False)
        return caller

    def _verify_token(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("malformed_token", "the token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise unauthorized(
                "algorithm_not_allowed",
                f"tokens must be signed with {' or '.join(ALGORITHMS)}",
            )
        if not isinstance(kid, str) or not kid:
            raise unauthorized("unknown_key", "the token names no key id (kid)")
        key = self._key(kid)
        if key is None:
            raise unauthorized("unknown_key", "the token's key id is not one of the issuer's")
        if key.key_type != KEY_TYPES[alg] or (key.algorithm_name not in (None, alg)):
            raise unauthorized(
                "algorithm_not_allowed", "the token's algorithm does not fit its key"
            )
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token_expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("token_not_yet_valid", "the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("wrong_audience", "the token is not for this gateway") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("wrong_issuer", "the token is not from a trusted issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized("missing_claim", f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("bad_signature", "the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise unauthorized("invalid_token", "the token is not valid") from None
        subject, roles = claims.get("sub"), claims.get("roles", ["operator"])
        if not isinstance(subject, str) or not isinstance(roles, list):
            raise unauthorized("invalid_token", "the token's sub or roles claim is malformed")
        return Caller(subject, tuple(str(r) for r in roles), int(claims["exp"]))
