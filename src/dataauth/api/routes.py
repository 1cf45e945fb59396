"""The gateway's HTTP routes. Each operation route hands its call to the spine."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from dataauth.api.render import json_response
from dataauth.errors import unauthorized
from dataauth.gateway import Gateway
from dataauth.metrics import exposition

router = APIRouter()

Authorization = Annotated[str | None, Header(description="Bearer <operator token>")]
ProductId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


async def gateway(request: Request) -> Gateway:
    # async: a plain def dependency would cost every request a hop to the threadpool
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(gateway)]


@router.get("/healthz", tags=["health"])
def healthz(gw: GatewayDep) -> Response:
    """200 once the gateway is ready: bundle compiled, databases open, demo loaded; 503
    while its audit log's time-stamps lag (it then refuses operations)."""
    body: dict[str, Any] = {"status": "ok", "policy_bundle": gw.policy.engine().digest}
    if gw.timestamping is None:
        return json_response(body)
    body["timestamping"] = gw.timestamping.status()
    if body["timestamping"]["stale"]:
        return json_response(body | {"status": "timestamping_stale"}, status_code=503)
    return json_response(body)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def metrics(request: Request, authorization: Authorization = None) -> Response:
    """Prometheus metrics: requests, decisions by outcome, latency, audit lag. Where
    ``DATAAUTH_METRICS_TOKEN`` is set, the scrape sends it as a bearer token."""
    token = request.app.state.settings.metrics_token
    if token is not None:
        expected = b"Bearer " + token.get_secret_value().encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise unauthorized("metrics_unauthorized", "/metrics needs the metrics bearer token")
    return Response(exposition(request.app.state.ledger), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/me", tags=["identity"])
def me(gw: GatewayDep, authorization: Authorization = None) -> Response:
    """Who the token is: its subject, its roles, and whether it is an operator of the
    catalog (the console picks its views from this; nothing here is secret)."""
    caller = gw.access.caller(authorization)
    operator = gw.catalog.operator(caller.subject)
    return json_response(
        {
            "subject": caller.subject,
            "roles": sorted(caller.roles),
            "operator": None if operator is None else {"id": operator.id, "name": operator.name},
        }
    )


@router.get("/v1/products", tags=["catalog"])
def products(gw: GatewayDep, authorization: Authorization = None) -> Response:
    """The products the calling operator's licence covers, each with its parameters."""
    _, operator = gw.access.operator(authorization)
    return json_response(gw.catalog.listing(operator, gw.clock()))


@router.post("/v1/admin/policy", tags=["policy"])
def publish_policy(
    content: dict[str, Any], request: Request, authorization: Authorization = None
) -> Response:
    """Publish a policy bundle ({modules, data}); a department's token; audited."""
    return json_response(request.app.state.policy_admin.publish(authorization, content))


@router.get("/v1/admin/policy", tags=["policy"])
def current_policy(gw: GatewayDep) -> Response:
    """The digest of the bundle in force."""
    return json_response({"digest": gw.policy.engine().digest})


@router.get("/v1/admin/policy/bundle", tags=["policy"])
def policy_bundle(request: Request, authorization: Authorization = None) -> Response:
    """The bundle in force, whole ({digest, modules, data}; a department's token)."""
    return json_response(request.app.state.policy_admin.in_force(authorization))


Moment = Annotated[str | None, Query(max_length=40, pattern=r"^\d{4}-\d{2}-\d{2}[T ]?[0-9:.]*Z?$")]


@router.post("/v1/admin/policy/whatif", tags=["policy"])
def policy_whatif(
    content: dict[str, Any],
    request: Request,
    since: Moment = None,
    until: Moment = None,
    authorization: Authorization = None,
) -> Response:
    """How the recorded decisions would change under a candidate bundle ({modules, data};
    a department's token). A dry run: nothing changes, so nothing is audited."""
    admin = request.app.state.policy_admin
    return json_response(admin.whatif(authorization, content, since, until))
