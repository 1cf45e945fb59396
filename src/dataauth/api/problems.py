"""Every error as RFC 9457 problem+json, with a stable code; never a submitted value."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from dataauth.errors import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

HTTP_CODES = {
    # FastAPI's only 400 of its own: a body its JSON parser gave up on (too deep, an
    # integer of thousands of digits), which is as malformed as a body cut short
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}

NOT_JSON = "the body is not valid JSON"
READABLE = {
    400: NOT_JSON,
    404: "no route has this path; /docs describes the ones there are",
}
"""Details for people where Starlette's or FastAPI's would only repeat the status."""

AUDITED_HTTP = {400, 413}
"""HTTP-layer refusals of an operation request that are the operator's malformed request."""


BODY = "dataauth.body"
"""The scope key under which BodyLimit keeps the body's chunks as they arrived."""


def operation_at(scope: dict[str, Any], operations: Mapping[str, str]) -> str | None:
    """The kind of operation a request is for, by ``operations`` (path template -> kind),
    from its method and path alone: before routing, where it is refused unread."""
    if scope.get("method") != "POST":  # every operation route is a POST
        return None
    path = scope.get("path", "")
    return next((k for t, k in operations.items() if compile_path(t)[0].match(path)), None)


async def audited(
    request: Request, problem: Problem, body: bytes | None = None, kind: str | None = None
) -> Problem:
    """The refusal of a malformed operation request, logged if an operator sent it. The
    entry commits to the request line and ``body``: by default the body as it arrived.
    The operation is ``kind``, or that of the route the request was routed to."""
    route = request.scope.get("route")
    # the operation routes, by path template (``app.state.operations``): an operator's
    # malformed request to one of them is an audit entry, so probing shows in the log
    kind = kind or request.app.state.operations.get(getattr(route, "path", ""))
    if kind is None:
        return problem
    if body is None:
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


# RFC 9110 15.5.16: content in a format the resource does not take is a 415, whether its
# Content-Type names another format or none (8.3: then it is taken as octet-stream, or
# sniffed). FastAPI does not sniff (a browser's form may post anything cross-site, but
# never application/json), so neither do we: the body is refused, and the detail says how
# to send it. curl -d, the usual first try, sends application/x-www-form-urlencoded.
NOT_SENT_AS_JSON = "the body must be sent as JSON, with the header Content-Type: application/json"
WHOLE_BODY = ("body",)
NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}


def _raw_body(error: dict[str, Any]) -> bool:
    # FastAPI parses a body as JSON only where its Content-Type says JSON; any other body
    # reaches validation as its raw bytes
    return isinstance(error.get("input"), bytes) and tuple(error.get("loc", ()))[:1] == WHOLE_BODY


def invalid(exc: RequestValidationError) -> Problem:
    """400 malformed_body, 415 unsupported_media_type or 422 invalid_request, naming
    where, never what was sent."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(400, "malformed_body", NOT_JSON)
    if any(_raw_body(e) for e in errors):
        return Problem(415, "unsupported_media_type", NOT_SENT_AS_JSON)
    details = _validation_errors(errors)
    first = details[0] if details else {"loc": [], "message": "invalid"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    message = f"{where}: {first['message']}"
    whole = [e for e in errors if tuple(e.get("loc", ())) == WHOLE_BODY]
    if whole and whole[0].get("type") == "missing":
        message = "the request has no body: send a JSON object, as application/json"
    elif whole and whole[0].get("type") in NOT_AN_OBJECT:
        message = "the body must be a JSON object ({...})"
    return Problem(422, "invalid_request", message, errors=details[:20])


def from_http(exc: HTTPException, request: Request) -> Problem:
    """A Starlette or FastAPI refusal as a problem, with its headers."""
    status = exc.status_code
    code = HTTP_CODES.get(status, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else ""
    # their own details only repeat the status, or say "parsing" where the JSON was bad
    if status in READABLE and (detail == HTTPStatus(status).phrase or status == 400):
        detail = READABLE[status]
    headers = dict(exc.headers or {})
    if status == 405:
        # RFC 9110 15.5.6: a 405 names the methods the path takes; Starlette's Allow has
        # those of the first route on the path only. The detail names them, never the
        # method sent: that is any token a client likes
        allowed = ", ".join(allowed_methods(request, exc))
        headers["Allow"] = allowed
        detail = f"this path takes {allowed} only"
    problem = Problem(status, code, detail or code.replace("_", " "))
    problem.headers.update(headers)
    return problem


METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}


def allowed_methods(request: Request, exc: HTTPException) -> list[str]:
    """The methods of every documented route on the request's path (so every route of
    the API), with those Starlette named (so the undocumented docs routes too)."""
    methods = {m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
    for template, item in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {m.upper() for m in item} & METHODS
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(await audited(request, invalid(exc)))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        problem = from_http(exc, request)
        if exc.status_code in AUDITED_HTTP:
            # a body over the limit is not taken in (api/limits.py): the entry commits to
            # the request line alone, which the operator can reproduce; a chunk boundary
            # where the limit was crossed it could not
            body = b"" if exc.status_code == 413 else None
            problem = await audited(request, problem, body)
        return problem_response(problem)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected error: %s", type(exc).__name__)
        return problem_response(Problem(500, "internal_error", "the gateway failed unexpectedly"))
