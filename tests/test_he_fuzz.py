"""Fuzzing the deserialization of operators' contexts and ciphertexts: garbage, truncated,
bit-flipped and spliced bytes get a 4xx problem (or read as a valid, meaningless
ciphertext), never a crash."""

from __future__ import annotations

import base64
import contextlib

import httpx
import pytest
import tenseal as ts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataauth.ckks import ALLOWED, check_context, load_vector
from dataauth.errors import Problem
from dataauth.sdk.he import HEClient, LinearModel, make_context, public_context

pytestmark = pytest.mark.slow

PARAMETERS = ALLOWED["ckks-8192"]
SECRET = make_context()
PUBLIC = ts.context_from(public_context(SECRET))
VECTOR = ts.ckks_vector(SECRET, [0.25] * PARAMETERS.slots).serialize()
CONTEXT = public_context(SECRET)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Bytes near ``valid``: cut short, bits flipped (mostly in the headers), spliced."""
    head = min(len(valid), 512)

    def flip(flips: list[tuple[int, int]]) -> bytes:
        data = bytearray(valid)
        for index, bit in flips:
            data[index % len(data)] ^= 1 << bit
        return bytes(data)

    return st.one_of(
        st.binary(max_size=4096),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.lists(
            st.tuples(st.integers(0, head - 1), st.integers(0, 7)), min_size=1, max_size=8
        ).map(flip),
        st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 7)), max_size=8).map(
            flip
        ),
        st.tuples(st.integers(0, len(valid)), st.binary(min_size=1, max_size=64)).map(
            lambda cut: valid[: cut[0]] + cut[1] + valid[cut[0] :]
        ),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(VECTOR))
def test_ciphertext_bytes_read_or_4xx(data: bytes) -> None:
    try:
        vector = load_vector(PUBLIC, PARAMETERS, data, "weight 0")
    except Problem as problem:
        assert 400 <= problem.status < 500
        return
    # what reads as a vector must also compute: a multiply, an add, a serialization
    with contextlib.suppress(ValueError):  # the kind turns TenSEAL's ValueError into a 422
        (vector * ([1.0] * PARAMETERS.slots) + vector).serialize()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(CONTEXT))
def test_context_bytes_are_refused_with_a_4xx(data: bytes) -> None:
    try:
        check_context(data)
    except Problem as problem:
        assert 400 <= problem.status < 500


@pytest.fixture(scope="module")
def registered(gateway):
    model = LinearModel(["properties_owned"], [1.0], 0.0)
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        context_id = client.register_context(SECRET)
        return context_id, client.register_model("he-credit-score", context_id, model, SECRET)


def test_hostile_ciphertexts_over_http(gateway, registered) -> None:
    """Ciphertexts are read where they are filed: hostile ones in a filing get a 4xx (or
    file a meaningless model); in a score request they are never read, only digested."""
    context_id, _ = registered
    headers = {"Authorization": f"Bearer {gateway.token('demo-bank')}"}
    body = {"product": "he-credit-score", "context": context_id,
            "features": ["properties_owned"], "commitment": "sha256:" + "0" * 64,
            "bounds": [1.0], "bias": base64.b64encode(VECTOR).decode()}  # fmt: skip

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
              HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(data=mutated(VECTOR))
    def post(data: bytes) -> None:
        sent = {**body, "weights": [base64.b64encode(data).decode()]}
        response = httpx.post(f"{gateway.url}/v1/he/models", json=sent, headers=headers, timeout=60)
        assert response.status_code in (201, 413, 422), response.text
        assert response.headers["content-type"].startswith("application/")

    post()
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
