"""Every error as RFC 9457 problem+json, with a stable code; never a submitted value."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from dataauth.errors import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}


BODY = "dataauth.body"
"""The scope key under which BodyLimit keeps the body's chunks as they arrived."""


async def audited(request: Request, problem: Problem) -> Problem:
    """The refusal of a malformed operation request, logged if an operator sent it."""
    route = request.scope.get("route")
    # the operation routes, by path template (``app.state.operations``): an operator's
    # malformed request to one of them is an audit entry, so probing shows in the log
    kind = request.app.state.operations.get(getattr(route, "path", ""))
    if kind is None:
        return problem
    body = b"".join(request.scope.get(BODY, ()))
    sent = f"{kind} {request.url.path}\n".encode() + body
    gateway = request.app.state.gateway
    authorization = request.headers.get("authorization")
    return await run_in_threadpool(gateway.reject, authorization, kind, "", sent, problem)


def problem_response(problem: Problem) -> Response:
    return Response(
        orjson.dumps(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # pydantic puts the offending input in each error: drop it, it may be an ID number
    return [
        {"loc": [p for p in e.get("loc", ()) if p != "body"], "message": e.get("msg", "")}
        for e in errors
    ]


def invalid(exc: RequestValidationError) -> Problem:
    """400 malformed_body or 422 invalid_request, naming where, never what was sent."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(400, "malformed_body", "the body is not valid JSON")
    details = _validation_errors(errors)
    first = details[0] if details else {"loc": [], "message": "invalid"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return Problem(422, "invalid_request", f"{where}: {first['message']}", errors=details[:20])


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(await audited(request, invalid(exc)))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return problem_response(Problem(exc.status_code, code, detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected error: %s", type(exc).__name__)
        return problem_response(Problem(500, "internal_error", "the gateway failed unexpectedly"))
