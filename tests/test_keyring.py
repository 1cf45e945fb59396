"""The keyed subject hash is HMAC-SHA256, whatever the key's length."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from dataauth.identity.keys import SubjectHasher


@given(secret=st.binary(min_size=1, max_size=200), dataset=st.text(), key=st.text())
def test_the_subject_hash_is_hmac_sha256(secret, dataset, key):
    expected = hmac.digest(secret, f"{dataset}\x00{key}".encode(), "sha256").hex()[:32]
    assert SubjectHasher(secret)(dataset, key) == expected


def test_it_is_keyed():
    assert SubjectHasher(b"a" * 32)("residents", "1") != SubjectHasher(b"b" * 32)("residents", "1")
