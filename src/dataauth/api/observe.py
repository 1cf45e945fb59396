"""Per request: a log line, the request and latency metrics, and the security headers.

Pure ASGI, around everything else, so refusals made before routing (an oversized body)
are counted and carry the headers too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dataauth.metrics import request_series

log = logging.getLogger("dataauth.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS = ("/docs", "/redoc")
CONSOLE = "/console"
DOCS_ASSETS = "/docs/assets"
"""Where Swagger UI's and ReDoc's files are served from (app.py)."""
# the interactive docs run scripts, but only the gateway's own: their pages start the UI
# inline, the UIs inject their styles and draw icons from data: URLs, ReDoc searches in a
# worker made from a blob; nothing is fetched from another origin (ReDoc's footer logo,
# which it asks of its vendor's CDN, is left out)
DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    b"form-action 'none'",
)

# the console runs only its own scripts and styles, and talks only to this origin; its
# charts are SVG elements it builds, so no image source beyond data: is needed
CONSOLE_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
)


def csp(path: str) -> tuple[bytes, bytes]:
    if path.startswith(DOCS):
        return DOCS_CSP
    if path == CONSOLE or path.startswith(CONSOLE + "/"):
        return CONSOLE_CSP
    return API_CSP


class Observe:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        extra = [*SECURITY_HEADERS, csp(scope["path"])]

        async def observed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                # no-store unless the route says how it may be cached (the tlog tiles)
                own = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in own)]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            took = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            requests, latency = request_series(scope["method"], template, status)
            requests.inc()
            latency.observe(took)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "ms": round(took * 1000, 2),
                },
            )
