"""Routes of aggregate queries (聚合查询): thin, they hand the call to the spine."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from dataauth.api.render import json_response
from dataauth.api.routes import Authorization, GatewayDep

router = APIRouter(tags=["aggregate queries (聚合查询)"])


@router.get("/v1/query/datasets")
def datasets(gw: GatewayDep, authorization: Authorization = None) -> Response:
    """The datasets the caller's licence lets it query, with each column's uses and bounds,
    and the joins declared between them."""
    _, operator = gw.access.operator(authorization)
    licensed = set(operator.licence.products) if operator.licence else set()
    snapshot = gw.catalog.snapshot()
    listing = []
    for dataset in snapshot.datasets.values():
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
    joins = [
        {
            "id": join.id,
            "title": join.title,
            "left": {"dataset": join.left_dataset, "column": join.left_column},
            "right": {"dataset": join.right_dataset, "column": join.right_column},
            "max_per_right": join.max_per_right,
        }
        for join in snapshot.joins.values()
        if {f"query:{join.left_dataset}", f"query:{join.right_dataset}"} <= licensed
    ]
    return json_response({"operator": operator.id, "datasets": listing, "joins": joins})
