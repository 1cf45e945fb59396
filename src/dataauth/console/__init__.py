"""The console (控制台): a browser client of the public API, served from the package.

Its pages and scripts ship inside the wheel and are served from here, so the console
works on a network that reaches no CDN. It has no route of its own into the gateway:
every action it offers is a call to ``/v1/...`` with the signed-in token, the same call
the command line and the SDK make, authorised and audited the same way.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console"

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get(PREFIX)
@router.get(PREFIX + "/")
def index() -> Response:
    """The console's one page; its views are ES modules under /console/static."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


def static_files() -> StaticFiles:
    """The console's assets, mounted at ``/console/static`` by the assembly."""
    return StaticFiles(directory=STATIC)
