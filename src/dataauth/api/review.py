"""Model submission (operators) and review (departments) over HTTP; runs are the spine's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from dataauth.admin.review import ModelReview, SubmitRequest
from dataauth.api.render import json_response
from dataauth.api.routes import Authorization
from dataauth.catalog.model_status import Status
from dataauth.catalog.submissions import Conditions, Rejection

router = APIRouter(prefix="/v1/models", tags=["models (模型)"])

ModelId = Annotated[str, Path(pattern=r"^m-[0-9a-f]{16}$")]


async def review(request: Request) -> ModelReview:
    return request.app.state.model_review


ReviewDep = Annotated[ModelReview, Depends(review)]


@router.post("")
def submit(body: SubmitRequest, models: ReviewDep, authorization: Authorization = None) -> Response:
    """Submit an ONNX model (base64) with its manifest; checked, stored by SHA-256, pending."""
    return json_response(models.submit(authorization, body), status_code=201)


@router.get("")
def listing(
    models: ReviewDep,
    status: Annotated[Status | None, Query()] = None,
    authorization: Authorization = None,
) -> Response:
    """Submissions: every one for a department, an operator's own otherwise."""
    return json_response(models.listing(authorization, status))


@router.get("/{model}")
def show(model: ModelId, models: ReviewDep, authorization: Authorization = None) -> Response:
    """One submission: its manifest, the graph's summary and its review."""
    return json_response(models.show(authorization, model))


@router.post("/{model}/approve")
def approve(
    model: ModelId, body: Conditions, models: ReviewDep, authorization: Authorization = None
) -> Response:
    """Approve a pending model with conditions (a department's token); audited."""
    return json_response(models.approve(authorization, model, body))


@router.post("/{model}/reject")
def reject(
    model: ModelId, body: Rejection, models: ReviewDep, authorization: Authorization = None
) -> Response:
    """Reject a pending model with a reason (a department's token); audited."""
    return json_response(models.reject(authorization, model, body))


@router.post("/{model}/revoke")
def revoke(
    model: ModelId, body: Rejection, models: ReviewDep, authorization: Authorization = None
) -> Response:
    """Withdraw an approval with a reason (a department's token); audited. The model
    runs no more from the next request on."""
    return json_response(models.revoke(authorization, model, body))
