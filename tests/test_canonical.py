"""The fast canonical JSON path writes exactly what the RFC 8785 reference writes."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from dataauth.canonical import PLAIN_FLOATS, _plain, canonical

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=500)
@given(values)
def test_matches_the_reference(value):
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # the reference refuses it (e.g. an integer beyond 2**53)
        return
    assert canonical(value) == expected


def test_known_vectors():
    # RFC 8785 section 3.2.2: sorting by UTF-16 code units, and number forms
    assert canonical({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'
    assert canonical({"n": 5000.0, "e": 1e21}) == b'{"e":1e+21,"n":5000}'
    assert canonical("\u0001\n\u2028é") == b'"\\u0001\\n\xe2\x80\xa8\xc3\xa9"'


@settings(max_examples=2000)
@given(st.floats(min_value=PLAIN_FLOATS[0] / 10, max_value=PLAIN_FLOATS[1] * 10))
def test_floats_on_the_fast_path_print_as_the_reference_does(value):
    """The disclosure bits of every subject (2.58, 6.66 ...) take the fast path: within
    its range, and at its edges, a float prints as the reference prints it."""
    for signed in (value, -value):
        assert canonical({"bits": signed}) == rfc8785.dumps({"bits": signed})


def test_the_fast_path_takes_the_floats_it_can():
    assert _plain({"bits": 2.584962500721156, "asked": [0.0001, 999999999999999.9]})
    assert not _plain(5.0)  # a whole number: 5.0 here, 5 in the reference
    assert not _plain(9.999999999999999e-05) and not _plain(1e15)
    edges = [1e-4, 9.999999999999999e-05, 1e15, 999999999999999.9, 1e-7, 1e21, 0.1, 1 / 3]
    for value in edges:
        assert canonical([value, -value]) == rfc8785.dumps([value, -value])


def test_whole_floats_take_the_fast_path(monkeypatch):
    """A batch's scores rounded to whole numbers (0.0, 1.0) print as the reference prints
    them, without the reference."""
    value = {"results": [{"index": 0, "score": 1.0}, {"score": -0.0}, {"score": 0.25}],
             "n": [5000.0, float(2**53 - 1), -(2.0**52)]}  # fmt: skip
    expected = rfc8785.dumps(value)

    def refuse(_value):
        raise AssertionError("the reference path was taken")

    monkeypatch.setattr(rfc8785, "dumps", refuse)
    assert canonical(value) == expected
    assert canonical((1.0, 2.5)) == b"[1,2.5]"
