"""Routes of aggregate queries (聚合查询): thin, they hand the call to the spine."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dataauth.api.render import json_response
from dataauth.api.routes import Authorization, GatewayDep
from dataauth.operations.aggregate import QueryCall, QueryRequest

router = APIRouter(tags=["aggregate queries (聚合查询)"])


@router.post("/v1/query")
async def query(
    body: QueryRequest, request: Request, gw: GatewayDep, authorization: Authorization = None
) -> Response:
    """Run one checked aggregate query: groups of at least k, with noise where policy asks."""
    call = QueryCall(body, await request.body())
    result: dict[str, Any] = await run_in_threadpool(gw.handle, authorization, "query", call)
    return json_response(result)


@router.get("/v1/query/datasets")
def datasets(gw: GatewayDep, authorization: Authorization = None) -> Response:
    """The datasets the caller's licence lets it query, with each column's uses and bounds."""
    _, operator = gw.authenticate(authorization)
    licensed = set(operator.licence.products) if operator.licence else set()
    listing = []
    for dataset in gw.catalog.snapshot().datasets.values():
        if f"query:{dataset.id}" not in licensed:
            continue
        columns = [
            {
                "name": c.name,
                "title": c.title,
                "type": c.type,
                "level": c.level,
                "uses": list(c.uses),
                "bounds": list(c.bounds) if c.bounds else None,
            }
            for c in dataset.columns.values()
            if c.name != dataset.key_column
        ]
        listing.append({"id": dataset.id, "title": dataset.title, "columns": columns})
    return json_response({"operator": operator.id, "datasets": listing})
