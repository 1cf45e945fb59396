"""Routes for encrypted scoring: register a context, file a model, score."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dataauth.api.audit import REGULATOR
from dataauth.api.render import json_response
from dataauth.api.routes import Authorization, GatewayDep
from dataauth.errors import Problem, forbidden
from dataauth.gateway import Gateway
from dataauth.operations.encrypted import ScoreCall, ScoreRequest
from dataauth.operations.he_params import ALLOWED
from dataauth.operations.he_registry import (
    KIND,
    ContextRequest,
    HEContext,
    HEModel,
    ModelRequest,
    Registry,
    registration,
)

router = APIRouter(prefix="/v1/he", tags=["encrypted scoring (密态计算)"])


async def _register(
    request: Request, gw: Gateway, authorization: str | None, what: str, make: Any
) -> Response:
    """Authenticate, register, and audit the registration as the operator's own step;
    a refused registration is on the record too, with its code."""
    raw = await request.body()

    def register() -> dict[str, Any]:
        _, operator = gw.authenticate(authorization)

        def record(outcome: str, **operation: str) -> dict[str, Any]:
            return gw.record_action(
                operator.id,
                {"kind": f"{KIND}-{what}", **operation},
                purpose="he-registration",
                request=raw,
                outcome=outcome,
            ).as_dict()

        try:
            row: HEContext | HEModel = make(operator.id)
        except Problem as problem:
            problem.extensions["audit"] = record("refused", code=problem.code)
            raise
        return {**registration(row), "audit": record("registered", id=row.id)}

    return json_response(await run_in_threadpool(register), status_code=201)


def _registry(request: Request) -> Registry:
    return request.app.state.he_registry


@router.get("/parameters")
def parameters() -> Response:
    """The CKKS parameter sets a context may use."""
    return json_response({"parameters": [p.as_dict() for p in ALLOWED.values()]})


@router.post("/contexts", status_code=201)
async def register_context(
    body: ContextRequest, request: Request, gw: GatewayDep, authorization: Authorization = None
) -> Response:
    """Register a public CKKS context (no secret key); referenced by its id afterwards."""
    registry = _registry(request)
    return await _register(
        request,
        gw,
        authorization,
        "context",
        lambda operator: registry.register_context(operator, body, gw.clock()),
    )


@router.post("/models", status_code=201)
async def register_model(
    body: ModelRequest, request: Request, gw: GatewayDep, authorization: Authorization = None
) -> Response:
    """File a model (算法备案): product, features in order, commitment to its weights."""
    registry = _registry(request)
    return await _register(
        request,
        gw,
        authorization,
        "model",
        lambda operator: registry.register_model(operator, body, gw.clock()),
    )


@router.get("/models/{model_id}/filing")
def filing(
    model_id: str, request: Request, gw: GatewayDep, authorization: Authorization = None
) -> Response:
    """A filing as a regulator takes it away (算法备案): what was filed, the public context
    and the filed ciphertexts, to check offline against the weights the operator reveals
    (``dataauth he check-filing``)."""
    caller = gw.tokens.verify(authorization)
    if REGULATOR not in caller.roles:
        raise forbidden("not_allowed", "reading a model filing needs a regulator's token")
    return json_response(_registry(request).filing(model_id))


@router.post("/score")
async def score(
    body: ScoreRequest, request: Request, gw: GatewayDep, authorization: Authorization = None
) -> Response:
    """Score subjects (or aggregate a cohort) under encrypted weights; ciphertexts back."""
    raw = await request.body()

    def run() -> dict[str, Any]:
        _, operator = gw.authenticate(authorization)
        return gw.handle(authorization, KIND, ScoreCall(operator.id, body, raw))

    return json_response(await run_in_threadpool(run))
