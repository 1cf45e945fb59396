"""Canonical JSON (RFC 8785, JCS): the bytes every digest and signature covers.

``rfc8785`` is the reference, and pure Python. For the values the gateway logs on every
request (strings, booleans, null, safe integers, ASCII keys, and floats that are not
whole numbers between 1e-4 and 1e15, such as the bits charged to each subject), orjson
with sorted keys writes exactly the same bytes some twenty times faster; anything else
(an extreme float, a non-ASCII key, an integer beyond 2**53) takes the reference
path. A whole float under 2**53 goes as the integer it equals, which RFC 8785 prints
alike. The test suite checks the two agree over generated values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

SAFE_INTEGER = 2**53 - 1
PLAIN_FLOATS = (1e-4, 1e15)
"""Where a float that is not a whole number prints the same in both: orjson, like
Python, writes the shortest digits that read back, in fixed notation for magnitudes in
this range; so does ECMAScript (RFC 8785 section 3.2.2.3), from 1e-6 up to 1e21. Whole
numbers differ (``5.0`` against ``5``), as do exponents outside it."""


def _plain(value: Any) -> bool:
    """True where orjson's sorted output is already RFC 8785 canonical.

    Leaves are tested inline rather than by a call each: this walk runs over every
    subject of every batch, and most of what it meets is strings and small integers.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -SAFE_INTEGER <= value <= SAFE_INTEGER
    if kind is float:
        low, high = PLAIN_FLOATS
        return low <= abs(value) < high and not value.is_integer()
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            leaf = type(item)
            if leaf is str or leaf is bool or item is None:
                continue
            if leaf is int and -SAFE_INTEGER <= item <= SAFE_INTEGER:
                continue
            if not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            leaf = type(item)
            if leaf is str or leaf is bool or item is None:
                continue
            if leaf is int and -SAFE_INTEGER <= item <= SAFE_INTEGER:
                continue
            if not _plain(item):
                return False
        return True
    return False  # whole or extreme floats, big integers, anything unusual


def _integral(value: Any) -> Any:
    """``value`` with each whole float under 2**53 in magnitude as the integer it equals,
    which is how RFC 8785 prints it (5.0 as 5, -0.0 as 0)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and abs(value) <= SAFE_INTEGER else value
    if kind is dict:
        return {key: _integral(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_integral(item) for item in value]
    return value


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``."""
    plain = _plain(value)
    if not plain:
        # a released score rounded to a whole number (0.0, 1.0) would send a whole batch's
        # answer down the reference path, some twenty times slower
        value_as_ints = _integral(value)
        if _plain(value_as_ints):
            value, plain = value_as_ints, True
    if plain:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate: let the reference say what is wrong
    return rfc8785.dumps(value)


def rfc3339(moment: datetime) -> str:
    """UTC time as ``YYYY-MM-DDTHH:MM:SSZ``: policies compare these as strings."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp() -> str:
    """Now, in UTC to the microsecond: when a row was written."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)
