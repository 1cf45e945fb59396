"""The demo's identities, for the console's sign-in (``--demo`` only).

With ``--demo`` anyone on the machine can mint any token with ``dataauth token``; these
routes let the console do the same from the browser, so a new user can try each role
without a terminal. Outside the demo, or where a real issuer is configured, they
answer 404: tokens then come from the deployment's issuer, pasted into the console.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from dataauth.api.render import json_response
from dataauth.config import Settings
from dataauth.demo.catalog import OPERATORS
from dataauth.errors import not_found
from dataauth.identity.access import DEPARTMENT, REGULATOR
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring

router = APIRouter(prefix="/v1/demo", tags=["demo"])

TOKEN_SECONDS = 8 * 3600
"""A working day: a demo session signs in once."""

IDENTITIES: list[dict[str, Any]] = [
    {"subject": "demo-department", "roles": [DEPARTMENT], "name": "示范数源部门 Demo department"},
    {"subject": "cac-regulator", "roles": [REGULATOR], "name": "示范监管方 Demo regulator"},
    *({"subject": o["id"], "roles": ["operator"], "name": o["name"]} for o in OPERATORS),
]


class TokenRequest(BaseModel):
    subject: str = Field(max_length=64)


def _demo(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not (settings.demo and settings.development_issuer):
        raise not_found("not_demo", "demo identities exist only on a gateway run with --demo")
    return settings


@router.get("/identities")
def identities(request: Request) -> Response:
    """Who one may sign in as in the demo: the department, a regulator, each operator."""
    _demo(request)
    return json_response({"identities": IDENTITIES})


@router.post("/tokens")
def token(body: TokenRequest, request: Request) -> Response:
    """A development token for one of the demo's identities (what ``dataauth token``
    prints), valid for a working day."""
    settings = _demo(request)
    found = next((i for i in IDENTITIES if i["subject"] == body.subject), None)
    if found is None:
        raise not_found("unknown_identity", f"no demo identity {body.subject!r}")
    issued = issue_token(
        Keyring(settings.keys_dir),
        subject=found["subject"],
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=TOKEN_SECONDS,
        roles=tuple(found["roles"]),
    )
    return json_response({"token": issued, **found, "expires_in": TOKEN_SECONDS})
