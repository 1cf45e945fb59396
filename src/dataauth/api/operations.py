"""The operation routes: one per kind, made from the route the kind declares.

Every route does the same: parse the body as the kind's request (with ``api.body``),
keep its bytes for the commitment, and hand the call to the spine in a worker thread. A
new kind gets its route from its own module; nothing here names one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from dataauth.api.body import BodyRoute
from dataauth.api.render import json_response
from dataauth.gateway import Gateway
from dataauth.operations.base import Call, OperationKind

AUTHORIZATION: dict[str, Any] = {
    "name": "authorization",
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "Bearer <operator token>",
        "title": "Authorization",
    },
    "description": "Bearer <operator token>",
}
"""The operator's token, as the document would describe an ``Authorization`` parameter:
the routes read the header themselves (FastAPI checks a declared header parameter's
type on every request, the spine's busiest path)."""

SPINE_THREADS = 40
"""Requests down the spine at once in a process: as many as Starlette's threadpool runs
(anyio's default limiter), so a group commit gathers as many entries as before."""


def spine_threads() -> ThreadPoolExecutor:
    """The threads the operation routes run the spine in (it blocks: the domain look-up,
    the account writes, the wait for the audit commit)."""
    return ThreadPoolExecutor(SPINE_THREADS, thread_name_prefix="spine")


def operation_routes(
    kinds: Iterable[OperationKind], threads: Executor
) -> tuple[APIRouter, dict[str, str]]:
    """A router with each kind's route (the spine run in ``threads``), and each route's
    path template -> its kind."""
    router = APIRouter(route_class=BodyRoute)  # bodies parsed with orjson (api.body)
    paths = {}
    for kind in kinds:
        route = kind.route
        router.add_api_route(
            route.path,
            endpoint(kind, threads),
            methods=["POST"],
            tags=[route.tag],
            summary=route.summary,
            description=route.summary,
            name=kind.name,
            openapi_extra={"parameters": [AUTHORIZATION]},
        )
        paths[route.path] = kind.name
    return router, paths


def endpoint(kind: OperationKind, threads: Executor) -> Callable[..., Any]:
    name, route = kind.name, kind.route

    async def answer(request: Request, body: Any, **target: str) -> Response:
        named = next(iter(target.values()), None)
        authorization = request.headers.get("authorization")
        call = Call(name, body, await request.body(), named)  # the body is cached
        # the gateway from the app's state, not a dependency: FastAPI solves a
        # dependency's own parameters on every request, the spine's busiest route
        gw: Gateway = request.app.state.gateway
        # the executor's hand-off rather than Starlette's run_in_threadpool: anyio's
        # capacity limiter, cancel scopes and queue cost twice the CPU of this one on
        # every request. The context goes along, as run_in_threadpool's does.
        handle = functools.partial(
            contextvars.copy_context().run, gw.handle, authorization, name, call
        )
        result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(threads, handle)
        return json_response(result)

    # FastAPI reads the endpoint's signature: the kind's body model, and the target's
    # pattern where the path names one
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("request", keyword, annotation=Request),
        inspect.Parameter("body", keyword, annotation=route.body),
    ]
    named = re.findall(r"\{(\w+)\}", route.path)
    if named:
        target = Annotated[str, Path(pattern=route.target)]
        parameters.append(inspect.Parameter(named[0], keyword, annotation=target))
    answer.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    return answer
