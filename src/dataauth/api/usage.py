"""Usage and budgets over HTTP, read only: a department's view of every operator, and an
operator's of its own (``admin/usage.py`` says where each figure comes from)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from dataauth.admin.usage import UsageReports
from dataauth.api.render import json_response
from dataauth.api.routes import Authorization

router = APIRouter(tags=["usage"])


def _reports(request: Request) -> UsageReports:
    return request.app.state.usage_reports


@router.get("/v1/admin/usage")
def department_usage(request: Request, authorization: Authorization = None) -> Response:
    """Every operator's counters, ε accounts and subjects near or at their disclosure
    budget (counts only), with entries per day (a department's token)."""
    return json_response(_reports(request).department(authorization))


@router.get("/v1/usage")
def own_usage(request: Request, authorization: Authorization = None) -> Response:
    """The calling operator's own counters, ε accounts and disclosure budget standing."""
    return json_response(_reports(request).own(authorization))
