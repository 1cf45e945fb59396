"""ConsentVerifier keeps a token's verified signature by its digest, bounded; its
revocation and expiry are checked on every use, kept or not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dataauth.identity import consent as consents
from dataauth.identity.consent import ConsentVerifier, issue_consent
from dataauth.identity.keys import Keyring
from dataauth.store.engine import gateway_engine, migrate

ISSUER = "dataauth-consent-dev"
WHO = ("subject-hash", "demo-bank", "credit", "income-band")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Keyring, ConsentVerifier]:
    keyring = Keyring(tmp_path / "keys")
    engine = gateway_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    migrate(engine)
    return keyring, ConsentVerifier(keyring.dev_consent_jwks, ISSUER, engine)


def token(keyring: Keyring, ttl_seconds: int = 3600) -> str:
    subject, operator, purpose, product = WHO
    return issue_consent(keyring, issuer=ISSUER, subject_hash=subject, operator=operator,
                         purpose=purpose, products=[product], ttl_seconds=ttl_seconds)  # fmt: skip


def refused(verifier: ConsentVerifier, tokens: list[str]) -> list[int]:
    subject, operator, purpose, product = WHO
    return verifier.check(tokens, [subject] * len(tokens), operator, purpose, product).missing


def counting(verifier: ConsentVerifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature the verifier checks from now on."""
    verified: list[str] = []
    verify = verifier._verify

    def spy(token: str, digest: str):
        verified.append(token)
        return verify(token, digest)

    monkeypatch.setattr(verifier, "_verify", spy)
    return verified


def jti_of(verifier: ConsentVerifier, token: str) -> str:
    return verifier._verified[consents.consent_digest(token)].jti


def test_a_kept_token_is_not_verified_again(setup, monkeypatch):
    keyring, verifier = setup
    kept = token(keyring)
    verified = counting(verifier, monkeypatch)
    assert refused(verifier, [kept]) == [] and refused(verifier, [kept]) == []
    assert verified == [kept]


def test_a_kept_token_revoked_is_refused(setup):
    keyring, verifier = setup
    kept = token(keyring)
    assert refused(verifier, [kept]) == []
    verifier.revoke(jti_of(verifier, kept), "test")
    assert refused(verifier, [kept]) == [0]


def test_a_kept_token_past_its_expiry_is_refused(setup, monkeypatch):
    keyring, verifier = setup
    kept = token(keyring, ttl_seconds=60)
    assert refused(verifier, [kept]) == []
    later = time.time() + 60 + verifier.leeway + 1
    monkeypatch.setattr(consents.time, "time", lambda: later)
    assert refused(verifier, [kept]) == [0]


def test_a_token_with_one_byte_changed_is_not_served_from_the_cache(setup, monkeypatch):
    keyring, verifier = setup
    kept = token(keyring)
    assert refused(verifier, [kept]) == []
    verified = counting(verifier, monkeypatch)
    for at in (len(kept) // 2, len(kept) - 2):  # in the claims, in the signature
        changed = kept[:at] + ("A" if kept[at] != "A" else "B") + kept[at + 1 :]
        assert refused(verifier, [changed, kept]) == [0]
    assert len(verified) == 2 and kept not in verified


def test_the_cache_stays_within_its_bounds(setup, monkeypatch):
    keyring, verifier = setup
    monkeypatch.setattr(consents, "VERIFIED", 8)
    tokens = [token(keyring) for _ in range(20)]
    for each in tokens:
        assert refused(verifier, [each]) == []
        assert len(verifier._verified) <= 8
    monkeypatch.setattr(consents, "VERIFIED_BYTES", 3 * len(tokens[0]))
    for each in tokens:
        assert refused(verifier, [each]) == []
        assert len(verifier._verified) <= 3
        assert verifier._verified_bytes <= consents.VERIFIED_BYTES
    # every token still answers, kept or verified afresh
    assert refused(verifier, tokens) == []
