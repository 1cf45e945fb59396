"""The OpenAPI document says what the gateway really answers: every error is a problem
(RFC 9457, ``application/problem+json``), including the 422 FastAPI would describe as
its own validation error shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dataauth.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details with a stable code.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "description": "stable, for programs to act on"},
        "detail": {"type": "string", "description": "readable, for people"},
        "audit": {"type": "object", "description": "the receipt, where the error is logged"},
    },
    "additionalProperties": True,
}
PROBLEM_RESPONSE = {
    "description": "A problem (RFC 9457)",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def install(app: FastAPI) -> None:
    """Describe errors as problems in ``app``'s OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses["4XX"] = PROBLEM_RESPONSE
                    responses["5XX"] = PROBLEM_RESPONSE
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas["Problem"] = PROBLEM_SCHEMA
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
