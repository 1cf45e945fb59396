"""RFC 3161 time-stamps over signed tree heads: asking a TSA, and checking its tokens.

A time-stamping authority signs (the SHA-256 of) a head's bytes and the time it saw
them: a third party's proof that the log had this head no later than then, which the
gateway's own clock cannot give. ``stamped_bytes`` is the one place that says what is
stamped. A token is kept as the TSA returned it (a CMS TimeStampToken, DER), so any
RFC 3161 tool checks it too: ``openssl ts -verify -token_in -in token.der -data ...``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from dataauth.audit.heads import TreeHead
from dataauth.canonical import rfc3339

QUERY_TYPE = "application/timestamp-query"

CLOCK_ALLOWANCE = timedelta(seconds=5)
"""How far a token's time may fall before its head's own time: the gateway's clock and
the TSA's are not one clock. Earlier than that, the head claims a time later than a
third party saw it: it was backdated into existence, or its time is false."""


class TimestampError(Exception):
    """A TSA did not give a valid token, or a token does not verify; says which."""


def stamped_bytes(head: TreeHead) -> bytes:
    """What a head's time-stamp covers: its signed message and its signature."""
    return head.message() + head.signature


def imprint(head: TreeHead) -> bytes:
    return hashlib.sha256(stamped_bytes(head)).digest()


@dataclass(frozen=True)
class Stamp:
    size: int
    """The size of the head it stamps."""
    token: bytes
    """The TimeStampToken, DER."""
    gen_time: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "gen_time": rfc3339(self.gen_time),
            "token": base64.b64encode(self.token).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, value: Any) -> Stamp:
        """Parse an exported stamp; the time is read from the token, not trusted."""
        try:
            token = base64.b64decode(value["token"], validate=True)
            return cls(int(value["size"]), token, _response(token).tst_info.gen_time)
        except (KeyError, TypeError, ValueError) as exc:
            raise TimestampError(f"malformed time-stamp: {exc}") from None


def load_roots(path: Path) -> list[x509.Certificate]:
    """The trusted TSA roots: every certificate of a PEM file."""
    try:
        roots = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TimestampError(f"{path.name} holds no PEM certificates: {exc}") from None
    return roots


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


GRANTED = bytes.fromhex("3003020100")
"""PKIStatusInfo { status granted }"""


def _response(token: bytes) -> Any:
    """A token as the granted TimeStampResp it came in, which the verifier takes."""
    body = GRANTED + token
    return decode_timestamp_response(b"\x30" + _der_length(len(body)) + body)


def _verify(response: Any, data: bytes, roots: list[x509.Certificate], nonce: int | None) -> None:
    try:
        VerifierBuilder(roots=list(roots), nonce=nonce).build().verify_message(response, data)
    except (VerificationError, ValueError) as exc:
        raise TimestampError(str(exc) or type(exc).__name__) from None


def request_stamp(url: str, head: TreeHead, roots: list[x509.Certificate], timeout: float) -> Stamp:
    """Ask the TSA at ``url`` for a token over ``head``; return it once it verifies:
    signed under ``roots``, over this head's imprint, answering this request's nonce."""
    data = stamped_bytes(head)
    request = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    try:
        answer = httpx.post(
            url,
            content=request.as_bytes(),
            headers={"Content-Type": QUERY_TYPE},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise TimestampError(f"the TSA did not answer ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise TimestampError(f"the TSA answered HTTP {answer.status_code}")
    try:
        response = decode_timestamp_response(answer.content)
    except ValueError:
        raise TimestampError("the TSA's answer is not a time-stamp response") from None
    _verify(response, data, roots, request.nonce)
    return Stamp(head.size, response.time_stamp_token(), response.tst_info.gen_time)


def check_stamp(stamp: Stamp, head: TreeHead, roots: list[x509.Certificate]) -> None:
    """Raise TimestampError unless the token is a TSA's under ``roots`` over this very
    head, and not dated before the head's own time."""
    if stamp.size != head.size:
        raise TimestampError(f"it stamps size {stamp.size}, not {head.size}")
    _verify(_response(stamp.token), stamped_bytes(head), roots, None)
    if stamp.gen_time + CLOCK_ALLOWANCE < datetime.fromisoformat(head.time):
        raise TimestampError(
            f"its time {rfc3339(stamp.gen_time)} is before the head's own time {head.time}"
        )


@dataclass
class StampReport:
    stamps: int = 0
    checked: bool = False
    newest: Stamp | None = None
    """The stamp of the largest head stamped."""
    unstamped: int = 0
    """Heads after the newest stamped one: signed since, or never stamped."""


def _time(head: TreeHead) -> datetime:
    try:
        return datetime.fromisoformat(head.time)
    except ValueError:
        raise TimestampError(f"the head at size {head.size} has no readable time") from None


def check_stamps(
    value: Any,
    heads: list[TreeHead],
    roots: list[x509.Certificate] | None,
    max_gap: float | None = None,
    until: datetime | None = None,
) -> StampReport:
    """Check an export's tokens (``timestamps.json``, None where it has none) against
    its verified ``heads``: each under ``roots``, over the head it names. With
    ``max_gap``, every head must be covered (by its own stamp or a later head's) within
    that many seconds of its signing; a head younger than that at ``until`` (the
    export's time) may still wait."""
    if value is None:
        value = []
    if not isinstance(value, list):
        raise TimestampError("timestamps.json must be a list of time-stamps")
    stamps = []
    for position, item in enumerate(value):
        try:
            stamps.append(Stamp.from_dict(item))
        except TimestampError as exc:
            raise TimestampError(f"time-stamp {position}: {exc}") from None
    report = StampReport(len(stamps), roots is not None)
    if stamps:
        report.newest = max(stamps, key=lambda s: (s.size, s.gen_time))
        report.unstamped = sum(1 for h in heads if h.size > report.newest.size)
    else:
        report.unstamped = len(heads)
    if roots is None:
        return report
    if not stamps:
        raise TimestampError("the export carries no time-stamps")
    by_size = {head.size: head for head in heads}
    for stamp in stamps:
        head = by_size.get(stamp.size)
        if head is None:
            raise TimestampError(f"a time-stamp names size {stamp.size}, a head not in the export")
        try:
            check_stamp(stamp, head, roots)
        except TimestampError as exc:
            raise TimestampError(f"the time-stamp of the head at size {head.size}: {exc}") from None
    if max_gap is not None:
        _check_gaps(stamps, heads, timedelta(seconds=max_gap), until)
    return report


def _check_gaps(
    stamps: list[Stamp], heads: list[TreeHead], gap: timedelta, until: datetime | None
) -> None:
    """Each head covered within ``gap``: by the earliest token of it or a later head."""
    earliest: datetime | None = None
    pending = sorted(stamps, key=lambda s: s.size, reverse=True)
    for head in sorted(heads, key=lambda h: h.size, reverse=True):
        while pending and pending[0].size >= head.size:
            stamp = pending.pop(0)
            earliest = stamp.gen_time if earliest is None else min(earliest, stamp.gen_time)
        deadline = _time(head) + gap
        if earliest is not None and earliest <= deadline:
            continue
        if earliest is None and until is not None and deadline >= until:
            continue  # younger than the gap when exported: its stamp may still come
        raise TimestampError(
            f"the head at size {head.size} (signed {head.time}) has no time-stamp within "
            f"{gap.total_seconds():g} s: the log was not stamped in time"
        )
