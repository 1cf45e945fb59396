"""Routes for encrypted scoring: register a context, file a model, score."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dataauth.admin.he import HEAdmin
from dataauth.api.render import json_response
from dataauth.api.routes import Authorization
from dataauth.catalog.he import ContextRequest, ModelRequest
from dataauth.ckks import ALLOWED

router = APIRouter(prefix="/v1/he", tags=["encrypted scoring (密态计算)"])


def _admin(request: Request) -> HEAdmin:
    return request.app.state.he_admin


@router.get("/parameters")
def parameters() -> Response:
    """The CKKS parameter sets a context may use."""
    return json_response({"parameters": [p.as_dict() for p in ALLOWED.values()]})


@router.post("/contexts", status_code=201)
async def register_context(
    body: ContextRequest, request: Request, authorization: Authorization = None
) -> Response:
    """Register a public CKKS context (no secret key); referenced by its id afterwards."""
    raw = await request.body()
    admin = _admin(request)
    answer = await run_in_threadpool(admin.register_context, authorization, body, raw)
    return json_response(answer, status_code=201)


@router.post("/models", status_code=201)
async def register_model(
    body: ModelRequest, request: Request, authorization: Authorization = None
) -> Response:
    """File a model (算法备案): product, features in order, commitment to its weights."""
    raw = await request.body()
    admin = _admin(request)
    answer = await run_in_threadpool(admin.register_model, authorization, body, raw)
    return json_response(answer, status_code=201)


@router.get("/filings")
def filings(request: Request, authorization: Authorization = None) -> Response:
    """Every registered context and filed model (算法备案) with its commitment to the
    weights and the digest of their ciphertexts (a department's or a regulator's token)."""
    return json_response(_admin(request).listing(authorization))


@router.get("/models/{model_id}/filing")
def filing(model_id: str, request: Request, authorization: Authorization = None) -> Response:
    """A filing as a regulator takes it away (算法备案): what was filed, the public context
    and the filed ciphertexts, to check offline against the weights the operator reveals
    (``dataauth he check-filing``)."""
    return json_response(_admin(request).filing(authorization, model_id))
