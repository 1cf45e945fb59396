"""The audit log over HTTP: signed tree heads, proofs and keys (public), entries (by role).

Heads, proofs and keys hold hashes and signatures only, so anyone may fetch them and
check a receipt against the public log. Entries, their stored bytes and the counts of
traffic are read by a regulator (any entry) or by an operator (its own); replay is a
regulator's.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response

from dataauth.api.render import json_response
from dataauth.audit.ledger import Ledger
from dataauth.audit.replay import engines_over, judge
from dataauth.audit.search import (
    Filter,
    entry_time,
    find_entries,
    recent_heads,
    stored_entry,
    traffic,
)
from dataauth.errors import Problem, forbidden, not_found, unprocessable
from dataauth.gateway import Gateway
from dataauth.identity.access import REGULATOR
from dataauth.policy.store import load_stored_bundle

router = APIRouter(prefix="/v1/audit", tags=["audit"])


async def ledger(request: Request) -> Ledger:
    return request.app.state.ledger


async def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


LedgerDep = Annotated[Ledger, Depends(ledger)]
MAX_INDEX = 2**62
"""Indexes and sizes past this are no log's: refused before they reach the database."""
VERDICTS = ("matched", "differs", "rejected", "administrative", "not_replayable", "no_bundle")
Size = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_INDEX,
        description="a signed tree size; by default the newest head every configured witness "
        "has cosigned where one covers the entry, else the newest head",
    ),
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


@router.get("/tree-heads")
def tree_heads(
    log: LedgerDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Response:
    """Signed tree heads, newest first (below size ``before`` if given)."""
    heads = recent_heads(log.engine, before, limit)
    return json_response(
        {
            "tree_heads": [head.as_dict() for head in heads],
            "next": heads[-1].size if len(heads) == limit else None,
        }
    )


@router.get("/proof/inclusion")
def inclusion(
    request: Request,
    log: LedgerDep,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
    tree_size: Size = None,
) -> Response:
    """A receipt: the entry's leaf hash, a signed head that covers it, and the proof.

    Without ``tree_size``, the head is the newest that every configured witness has
    cosigned, where one covers the entry: a busy log signs heads faster than witnesses
    are asked, so the newest head is seldom cosigned yet. Else it is the newest head."""
    if tree_size is None and (witnesses := len(request.app.state.settings.witnesses)):
        tree_size = log.witnessed_size(witnesses, index + 1)
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
    """Every public key that has signed a tree head, by key id (SHA-256 of the key); and
    every note key that has signed a checkpoint, as a vkey (``origin+hexid+base64``)."""
    return json_response({"keys": log.keys(), "vkeys": log.vkeys()})


Text = Annotated[str | None, Query(max_length=200)]


def _reader(gw: Gateway, authorization: str | None, operator: str | None = None) -> str | None:
    """The operator whose entries the caller may read: None for a regulator (any, or the
    one it asks for), the caller itself for an operator (asking for another is refused)."""
    caller = gw.access.caller(authorization)
    if REGULATOR in caller.roles:
        return operator
    if gw.catalog.operator(caller.subject) is None:
        raise forbidden("not_allowed", "reading the audit log needs a regulator's token")
    if operator is not None and operator != caller.subject:
        raise forbidden("not_allowed", "an operator reads only its own entries")
    return caller.subject


def _filter(
    operator: str | None, kind: str | None, outcome: str | None, since: str | None,
    until: str | None,
) -> Filter:  # fmt: skip
    for name, value in (("operator", operator), ("kind", kind), ("outcome", outcome)):
        if value is not None and not value.isprintable():
            raise unprocessable("invalid_filter", f"{name} holds a control character")
    times = {}
    for name, value in (("since", since), ("until", until)):
        try:
            times[name] = None if value is None else entry_time(value)
        except (ValueError, OverflowError):
            raise unprocessable("invalid_time", f"{name} must be an ISO 8601 time") from None
    return Filter(operator, kind, outcome, **times)


@router.get("/entries")
def entries(
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Annotated[str | None, Header()] = None,
    start: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    operator: Text = None,
    kind: Text = None,
    outcome: Text = None,
    since: Text = None,
    until: Text = None,
) -> Response:
    """Entries from ``from`` on: all of them for a regulator, its own for an operator;
    narrowed by operator, kind, outcome and time (``since`` ≤ time < ``until``)."""
    where = _filter(_reader(gw, authorization, operator), kind, outcome, since, until)
    rows, following = find_entries(log.engine, start, limit, where)
    return json_response(
        {
            "entries": [
                {"index": index, "leaf_hash": leaf.hex(), **orjson.loads(data)}
                for index, data, leaf in rows
            ],
            "next": following,
        }
    )


@router.get("/entries/{index}")
def entry_bytes(
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    index: Annotated[int, Path(ge=0, le=MAX_INDEX)],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The leaf's bytes exactly as stored, ``{"entry":...,"index":n}``: what its leaf
    hash covers, so a verifier hashes these bytes rather than a re-encoding."""
    reader = _reader(gw, authorization)
    stored = stored_entry(log.engine, index)
    if stored is None or (reader is not None and stored[0] != reader):
        raise not_found("no_entry", f"no entry {index} for this caller")
    return Response(stored[1], media_type="application/json")


@router.get("/traffic")
def traffic_counts(
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Annotated[str | None, Header()] = None,
    operator: Text = None,
    kind: Text = None,
    outcome: Text = None,
    since: Text = None,
    until: Text = None,
) -> Response:
    """Entries counted by kind and outcome, and by hour and outcome."""
    where = _filter(_reader(gw, authorization, operator), kind, outcome, since, until)
    return json_response(traffic(log.engine, where))


@router.get("/replay")
def replay_window(
    request: Request,
    log: LedgerDep,
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Annotated[str | None, Header()] = None,
    start: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Each entry of a window re-decided against the bundle that was in force, as
    ``dataauth audit replay`` does offline: a regulator's."""
    if REGULATOR not in gw.access.caller(authorization).roles:
        raise forbidden("not_allowed", "replaying the log needs a regulator's token")
    state = request.app.state
    if getattr(state, "replay_engines", None) is None:
        state.replay_engines = engines_over(partial(load_stored_bundle, log.engine))
    rows = log.entries(start, limit)
    results, counts = [], dict.fromkeys(VERDICTS, 0)
    for index, data, _ in rows:
        entry = orjson.loads(data)["entry"]
        try:
            verdict, replayed = judge(entry, state.replay_engines)
        except LookupError:
            verdict, replayed = "no_bundle", None
        counts[verdict] += 1
        result = {"index": index, "kind": entry["operation"].get("kind"), "verdict": verdict}
        if verdict == "differs":
            result |= {"recorded": entry["decision"], "replayed": replayed}
        results.append(result)
    return json_response(
        {
            "results": results,
            "counts": counts,
            "next": rows[-1][0] + 1 if len(rows) == limit else None,
        }
    )
