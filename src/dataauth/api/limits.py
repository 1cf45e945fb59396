"""Request body limits, enforced before the body is parsed (pure ASGI): its size, and
the time it may take to arrive."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from dataauth.api.problems import BODY, audited, operation_at, problem_response
from dataauth.errors import Problem


class BodyLimit:
    """Refuses a body over ``max_bytes``: by its Content-Length at once, or as it streams;
    and a body still arriving ``timeout`` seconds after the request began (408), so a
    client that trickles its body does not hold a connection and its buffer for ever.

    ``prefixes`` give routes under a path prefix a limit of their own (encrypted
    scoring carries ciphertexts of hundreds of KB each).
    """

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        prefixes: dict[str, int] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefixes = prefixes or {}
        self.timeout = timeout

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
            # refused unread, before routing: an operator's oversized operation request
            # is an audit entry all the same (as one streamed past the limit is, in
            # api/problems.py), which commits to the request line alone
            problem = Problem(413, "body_too_large", detail)
            kind = operation_at(scope, scope["app"].state.operations)
            if kind is not None:
                problem = await audited(Request(scope), problem, b"", kind)
            await problem_response(problem)(scope, receive, send)
            return
        seen, complete = 0, False
        # kept for the audit entry of a body refused as malformed (api/problems.py)
        chunks: list[bytes] = scope.setdefault(BODY, [])
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen, complete
            if complete:  # after the body, receive waits for a disconnect: no deadline
                return await receive()
            try:
                # timeout_at, not wait_for: no task is made for each receive
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # an HTTPException passes through FastAPI's body parsing untouched
                raise HTTPException(
                    408, f"the request body did not arrive within {self.timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                complete = not message.get("more_body", False)
                if seen > max_bytes:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
