"""Problems: the one error type every layer raises, rendered as RFC 9457 problem+json.

A problem carries a stable machine-readable ``code`` (clients branch on it) and a
readable ``detail`` (people read it). Details never quote a submitted value: a bad
subject key or claim is named by its position, not echoed back.
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """An error with an HTTP status, a stable code and a readable detail."""

    def __init__(self, status: int, code: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        """The problem+json document."""
        return {
            "type": f"urn:dataauth:problem:{self.code}",
            "title": self.code.replace("_", " ").capitalize(),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            **self.extensions,
        }


def bad_request(code: str, detail: str, **extensions: Any) -> Problem:
    return Problem(400, code, detail, **extensions)


def unauthorized(code: str, detail: str) -> Problem:
    problem = Problem(401, code, detail)
    problem.headers["WWW-Authenticate"] = (
        f'Bearer error="invalid_token", error_description="{code}"'
    )
    return problem


def forbidden(code: str, detail: str, **extensions: Any) -> Problem:
    return Problem(403, code, detail, **extensions)


def not_found(code: str, detail: str) -> Problem:
    return Problem(404, code, detail)


def unprocessable(code: str, detail: str, **extensions: Any) -> Problem:
    return Problem(422, code, detail, **extensions)


def unavailable(code: str, detail: str, **extensions: Any) -> Problem:
    return Problem(503, code, detail, **extensions)
