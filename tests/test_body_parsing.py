"""Operation bodies are parsed with orjson (``api.body``), and read exactly as the stdlib
reads them: the same values, the same errors, the same answers over HTTP."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataauth.api.body import parse_json

EDGES = [
    b'{"a": 1}',
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",  # past 64 bits: orjson would make it a float
    b"-9223372036854775809",
    b"123456789012345678901234567890",
    b'{"n": 0.1234567890123456789012}',
    b"NaN",
    b"[Infinity, -Infinity]",
    b"1e400",
    b"-0",
    b"-0.0",
    b'"\\ud800"',  # a lone surrogate: the stdlib takes it
    b'"\\u0000"',
    b'{"a": 1, "a": 2}',
    '{"名": "张三"}'.encode(),
    '{"a": 1}'.encode("utf-16"),
    b"\xef\xbb\xbf{}",
    b'{"a": 1,}',
    b'{"purpose": "credit", ',
    b"",
    b"\xff\xfe\x00",
    b"[" * 5000 + b"]" * 5000,
]


def outcome(parse, body: bytes):
    try:
        value = parse(body)
    except (ValueError, RecursionError) as exc:
        return type(exc), str(exc)
    return "value", json.dumps(value, sort_keys=True), repr(value)


@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_edges_read_as_the_stdlib_reads_them(body):
    assert outcome(parse_json, body) == outcome(json.loads, body)


def test_a_long_integer_stays_an_integer():
    assert parse_json(b'{"t": 18446744073709551616}') == {"t": 2**64}
    assert type(parse_json(b"123456789012345678901234567890")) is int


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=2000, deadline=None)
@given(values, st.booleans())
def test_any_json_value_reads_the_same(value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert outcome(parse_json, body) == outcome(json.loads, body)


@pytest.mark.slow
@pytest.mark.parametrize(
    "threshold",
    [b"NaN", b"1e400", b"123456789012345678901234567890"],
)
def test_numbers_orjson_reads_otherwise_are_refused_as_before(client, auth, gateway, threshold):
    key = gateway.domain_db().execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]
    content = (
        b'{"purpose": "credit", "subjects": [{"key": "'
        + key.encode()
        + b'", "claims": {"threshold": '
        + threshold
        + b"}}]}"
    )
    response = client.post(
        "/v1/verify/income-at-least",
        content=content,
        headers={**auth(), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_claim"


@pytest.mark.slow
def test_a_utf16_body_is_read_as_before(client, auth, gateway):
    key = gateway.domain_db().execute("SELECT resident_id FROM residents LIMIT 1").fetchone()[0]
    body = {"purpose": "credit", "subjects": [{"key": key, "claims": {"threshold": 3000}}]}
    response = client.post(
        "/v1/verify/income-at-least",
        content=json.dumps(body).encode("utf-16"),
        headers={**auth(), "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 1
