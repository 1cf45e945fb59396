"""A request body size limit, enforced before the body is parsed (pure ASGI)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from dataauth.api.problems import problem_response
from dataauth.errors import Problem


class BodyLimit:
    """Refuses a body over ``max_bytes``: by its Content-Length at once, or as it streams.

    ``prefixes`` give routes under a path prefix a limit of their own (encrypted
    scoring carries ciphertexts of hundreds of KB each).
    """

    def __init__(self, app: Any, max_bytes: int, prefixes: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefixes = prefixes or {}

    def limit(self, path: str) -> int:
        for prefix, max_bytes in self.prefixes.items():
            if path.startswith(prefix):
                return max_bytes
        return self.max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit(scope.get("path", ""))
        detail = f"the request body is over {max_bytes} bytes"
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            response = problem_response(Problem(413, "body_too_large", detail))
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    # an HTTPException passes through FastAPI's body parsing untouched
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
