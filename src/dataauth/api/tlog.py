"""The log as C2SP tlog-tiles: ``/checkpoint``, ``/tile/<L>/<N>``, ``/tile/entries/<N>``.

The checkpoint and the hash tiles hold hashes and signatures only: anyone may fetch
them, as anyone may fetch ``/v1/audit/tree-head``. Entry bundles hold the entries
themselves, which only a regulator reads whole (``/v1/audit/entries``), so they need a
regulator's token. Everything is read-only, and served only up to the newest signed
checkpoint: a client never sees a tile no checkpoint commits to.
"""

from __future__ import annotations

import gzip
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from starlette.responses import Response

from dataauth.api.audit import LedgerDep, gateway
from dataauth.audit.ledger import Ledger
from dataauth.audit.note import Checkpoint, Note
from dataauth.audit.tiles import (
    MAX_ENTRY,
    Tile,
    TilePathError,
    bundle,
    encode_index,
    parse_index,
    parse_level,
    tile_data,
)
from dataauth.errors import Problem, forbidden, not_found
from dataauth.gateway import Gateway
from dataauth.identity.access import REGULATOR

router = APIRouter(tags=["tlog-tiles"])


def _caching(tile: Tile, who: str = "public") -> str:
    # a partial tile's bytes never change either, but the spec lets a log drop it once
    # the full tile is out, and clients should then move on to that
    return f"{who}, max-age=60" if tile.partial else f"{who}, max-age=31536000, immutable"


CHECKPOINT_CACHE = "public, max-age=2"
OCTETS = "application/octet-stream"


def _signed_size(log: Ledger) -> tuple[bytes, int]:
    note = log.checkpoint()
    if note is None:
        raise not_found("no_checkpoint", "no checkpoint is signed yet")
    return note, Checkpoint.parse(Note.parse(note).text).size


def _tile(level: int | None, index: str) -> Tile:
    try:
        n, width = parse_index(index)
        return Tile(level, n, width)
    except TilePathError as exc:
        raise Problem(400, "malformed_tile_path", str(exc)) from None


def _in_range(log: Ledger, tile: Tile) -> int:
    _, size = _signed_size(log)
    if tile.needs() > size:
        problem = not_found(
            "tile_not_found", f"the newest checkpoint ({size} entries) has no {tile.path()}"
        )
        problem.headers["Cache-Control"] = "no-store"
        raise problem
    return size


@router.get("/checkpoint")
def checkpoint(log: LedgerDep) -> Response:
    """The newest signed checkpoint (c2sp.org/tlog-checkpoint in a signed note)."""
    note, _ = _signed_size(log)
    return Response(
        note,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": CHECKPOINT_CACHE},
    )


def _entries(
    log: Ledger, gw: Gateway, authorization: str | None, index: str, wide: bool, accept: str
) -> Response:
    caller = gw.access.caller(authorization)
    if REGULATOR not in caller.roles:
        raise forbidden("not_allowed", "entry bundles hold every entry: a regulator's token")
    tile = _tile(None, index)
    _in_range(log, tile)
    start, end = tile.span()
    rows = log.entries(start, end - start)
    entries = [data for _, data, _ in rows]
    if len(entries) != end - start:
        raise not_found("tile_not_found", f"entries {start} to {end} are not all stored")
    if not wide and any(len(entry) > MAX_ENTRY for entry in entries):
        at = start + next(i for i, e in enumerate(entries) if len(e) > MAX_ENTRY)
        wide_path = f"/entries-wide/{encode_index(tile.index)}" + (
            f".p/{tile.width}" if tile.partial else ""
        )
        problem = not_found(
            "entry_too_large",
            f"entry {at} is over {MAX_ENTRY} bytes, more than a bundle's uint16 length "
            f"prefix counts: fetch {wide_path} (uint32 prefixes) instead",
        )
        problem.headers["Link"] = f'<{wide_path}>; rel="alternate"'
        raise problem
    body = bundle(entries, wide)
    # private: a shared cache must not hand a regulator's bundle to anyone else
    headers = {"Cache-Control": _caching(tile, "private")}
    if "gzip" in accept:
        body = gzip.compress(body, 6)
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding, Authorization"
    return Response(body, media_type=OCTETS, headers=headers)


Authorization = Annotated[str | None, Header()]
AcceptEncoding = Annotated[str, Header()]


@router.get("/tile/entries/{index:path}")
def entry_bundle(
    index: str,
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Authorization = None,
    accept_encoding: AcceptEncoding = "",
) -> Response:
    """Entry bundle N: the entries of level-0 tile N, uint16 length-prefixed."""
    return _entries(log, gw, authorization, index, False, accept_encoding)


@router.get("/entries-wide/{index:path}")
def entry_bundle_wide(
    index: str,
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Authorization = None,
    accept_encoding: AcceptEncoding = "",
) -> Response:
    """Entry bundle N with uint32 length prefixes: for entries over 65,535 bytes."""
    return _entries(log, gw, authorization, index, True, accept_encoding)


@router.get("/tile/{level}/{index:path}")
def tile(level: str, index: str, log: LedgerDep) -> Response:
    """Tile N of level L: up to 256 hashes of the RFC 6962 tree, 32 bytes each."""
    try:
        parsed = _tile(parse_level(level), index)
    except TilePathError as exc:
        raise Problem(400, "malformed_tile_path", str(exc)) from None
    size = _in_range(log, parsed)
    if log.tree.size < size:
        log.sync(upto=size)
    return Response(
        tile_data(log.tree, parsed),
        media_type=OCTETS,
        headers={"Cache-Control": _caching(parsed)},
    )
