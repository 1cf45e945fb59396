"""The audit log over HTTP: signed tree heads, proofs and keys (public), entries (by role).

Heads, proofs and keys hold hashes and signatures only, so anyone may fetch them and
check a receipt against the public log. Entries are read by a regulator (any entry)
or by an operator (its own).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from dataauth.api.render import json_response
from dataauth.audit.ledger import Ledger
from dataauth.errors import Problem, forbidden, not_found
from dataauth.gateway import Gateway
from dataauth.identity.access import REGULATOR

router = APIRouter(prefix="/v1/audit", tags=["audit"])


async def ledger(request: Request) -> Ledger:
    return request.app.state.ledger


async def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


LedgerDep = Annotated[Ledger, Depends(ledger)]
MAX_INDEX = 2**62
"""Indexes and sizes past this are no log's: refused before they reach the database."""
Size = Annotated[
    int | None,
    Query(ge=1, le=MAX_INDEX, description="a signed tree size; the latest by default"),
]


def _covering_head(ledger: Ledger, size: int | None, needs: int) -> dict:
    head = ledger.latest_head() if size is None else ledger.head(size)
    if head is None:
        what = "no tree head is signed yet" if size is None else f"no tree head of size {size}"
        raise not_found("no_tree_head", what)
    if head.size < needs:
        problem = Problem(
            404, "not_yet_covered", f"the latest tree head covers {head.size} entries; retry"
        )
        problem.headers["Retry-After"] = "1"
        raise problem
    return head.as_dict()


@router.get("/tree-head")
def tree_head(log: LedgerDep) -> Response:
    """The latest signed tree head."""
    return json_response(_covering_head(log, None, 0))


@router.get("/proof/inclusion")
def inclusion(
    log: LedgerDep, index: Annotated[int, Query(ge=0, le=MAX_INDEX)], tree_size: Size = None
) -> Response:
    """A receipt: the entry's leaf hash, a signed head that covers it, and the proof."""
    head = _covering_head(log, tree_size, index + 1)
    log.sync()
    proof = log.tree.inclusion_proof(index, head["size"])
    return json_response(
        {
            "index": index,
            "leaf_hash": log.tree.leaf(index).hex(),
            "tree_size": head["size"],
            "proof": [p.hex() for p in proof],
            "tree_head": head,
            # the head as a C2SP checkpoint, with the cosignatures of the witnesses so far
            **({"checkpoint": note.decode()} if (note := log.checkpoint(head["size"])) else {}),
        }
    )


@router.get("/proof/consistency")
def consistency(
    log: LedgerDep,
    old: Annotated[int, Query(alias="from", ge=1, le=MAX_INDEX)],
    new: Annotated[int, Query(alias="to", ge=1, le=MAX_INDEX)],
) -> Response:
    """A proof that the signed head of size ``to`` extends the one of size ``from``."""
    if old > new:
        raise Problem(422, "invalid_range", "from must not exceed to")
    older, newer = _covering_head(log, old, old), _covering_head(log, new, new)
    log.sync()
    proof = log.tree.consistency_proof(old, new)
    return json_response(
        {
            "from": old,
            "to": new,
            "proof": [p.hex() for p in proof],
            "from_head": older,
            "to_head": newer,
        }
    )


@router.get("/keys")
def keys(log: LedgerDep) -> Response:
    """Every public key that has signed a tree head, by key id (SHA-256 of the key)."""
    return json_response({"keys": log.keys()})


@router.get("/entries")
def entries(
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Annotated[str | None, Header()] = None,
    start: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Entries from ``from`` on: all of them for a regulator, its own for an operator."""
    caller = gw.access.caller(authorization)
    if REGULATOR in caller.roles:
        operator = None
    else:
        if gw.catalog.operator(caller.subject) is None:
            raise forbidden("not_allowed", "reading the audit log needs a regulator's token")
        operator = caller.subject
    rows = log.entries(start, limit, operator)
    return json_response(
        {
            "entries": [
                {"index": index, "leaf_hash": leaf.hex(), **orjson.loads(data)}
                for index, data, leaf in rows
            ],
            "next": rows[-1][0] + 1 if len(rows) == limit else None,
        }
    )
