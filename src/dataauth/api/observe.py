"""Per request: a log line, the request and latency metrics, and the security headers.

Pure ASGI, around everything else, so refusals made before routing (an oversized body)
are counted and carry the headers too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dataauth.metrics import LATENCY, REQUESTS

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


class Observe:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        extra = [*SECURITY_HEADERS, DOCS_CSP if scope["path"].startswith(DOCS) else API_CSP]

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
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(template).observe(took)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "ms": round(took * 1000, 2),
                },
            )
