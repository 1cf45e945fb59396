"""The fast canonical JSON path writes exactly what the RFC 8785 reference writes."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from dataauth.canonical import canonical

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
