"""The catalog over HTTP, for departments: read it as a document, publish one (audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from dataauth.admin.catalog import CatalogAdmin
from dataauth.api.render import json_response
from dataauth.api.routes import Authorization

router = APIRouter(prefix="/v1/admin/catalog", tags=["catalog"])


async def admin(request: Request) -> CatalogAdmin:
    return request.app.state.catalog_admin


AdminDep = Annotated[CatalogAdmin, Depends(admin)]


@router.get("")
def show(catalog: AdminDep, authorization: Authorization = None) -> Response:
    """The catalog as a document (a department's token)."""
    return json_response(catalog.show(authorization))


@router.put("")
def publish(
    catalog: AdminDep, content: Annotated[Any, Body()] = None, authorization: Authorization = None
) -> Response:
    """Publish a catalog document (a department's token; audited): every item it names is
    added or replaced, in one transaction; items it does not name stay as they are."""
    return json_response(catalog.publish(authorization, content))
