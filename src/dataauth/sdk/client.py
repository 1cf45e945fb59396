"""A client of a running gateway, over HTTP, for whoever holds a token.

    with Client("http://127.0.0.1:8080", token) as gateway:
        pending = gateway.models(status="pending")
        gateway.approve_model(pending[0]["id"], expires="2027-06-30T00:00:00Z")

A refusal is a ``GatewayError`` carrying the problem (RFC 9457): its status, stable
``code``, ``detail`` and, where the gateway lists them, ``errors``. A request that gets
no answer at all raises ``GatewayUnreachable``.
"""

from __future__ import annotations

import base64
from typing import Any, Self
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class GatewayError(Exception):
    """A problem+json answer from the gateway."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('code')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem

    @property
    def code(self) -> str | None:
        return self.problem.get("code")

    @property
    def detail(self) -> str | None:
        return self.problem.get("detail")

    @property
    def errors(self) -> list[Any]:
        """The problem's list of what is wrong and where: catalog errors (``at``,
        ``message``) or request validation errors (``loc``, ``message``); [] if none."""
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class GatewayUnreachable(httpx.TransportError):
    """No answer: the gateway is down, the address is wrong or the connection broke.
    Still an ``httpx.HTTPError``, for callers that catch those."""

    def __init__(self, url: str, cause: httpx.HTTPError) -> None:
        super().__init__(str(cause))
        self.url = url
        self.cause = cause


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    # not the gateway's own answer (a proxy's page, say): what there is, as a problem
    return {"status": response.status_code, "detail": response.text or response.reason_phrase}


def _segment(value: str) -> str:
    return quote(value, safe=":")


class Client:
    """The gateway's routes the command line uses, one method each; every answer is the
    route's JSON."""

    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60.0
    ) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request, whatever its status (``kwargs`` as httpx takes)."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(self.url, exc) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a successful answer; a refusal raises ``GatewayError``."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise GatewayError(response.status_code, _problem(response))
        return response.json()

    def fetch(self, path: str) -> bytes:
        """The bytes served at ``path`` (the log's tlog-tiles: ``checkpoint``,
        ``tile/0/000``); a refusal raises ``GatewayError``."""
        response = self.send("GET", "/" + path.lstrip("/"))
        if response.status_code >= 400:
            raise GatewayError(response.status_code, _problem(response))
        return response.content

    def health(self, timeout: float = 3.0) -> dict[str, Any]:
        """``/healthz`` (no token needed): ready only on a 200."""
        response = self.send("GET", "/healthz", timeout=timeout)
        if response.status_code != 200:
            raise GatewayError(response.status_code, _problem(response))
        return response.json()

    # -- models (an operator submits; a department reviews) -------------------------

    def submit_model(self, manifest: dict[str, Any], onnx: bytes) -> dict[str, Any]:
        """Submit an ONNX model with its manifest for review (an operator's token)."""
        body = {"manifest": manifest, "onnx": base64.b64encode(onnx).decode()}
        return self.request("POST", "/v1/models", json=body)

    def models(self, status: str | None = None) -> list[dict[str, Any]]:
        """Submissions, all or those with ``status`` (pending, approved, rejected)."""
        params = {"status": status} if status else None
        return self.request("GET", "/v1/models", params=params)["models"]

    def model(self, model_id: str) -> dict[str, Any]:
        """One submission: manifest, graph summary, leakage check, review."""
        return self.request("GET", f"/v1/models/{_segment(model_id)}")

    def approve_model(
        self,
        model_id: str,
        *,
        expires: str,
        max_runs: int | None = None,
        forms: list[str] | None = None,
        note: str = "",
    ) -> dict[str, Any]:
        """Approve a pending model until ``expires`` (ISO 8601), with conditions."""
        body = {"expires": expires, "max_runs": max_runs, "forms": forms, "note": note}
        return self.request("POST", f"/v1/models/{_segment(model_id)}/approve", json=body)

    def reject_model(self, model_id: str, reason: str) -> dict[str, Any]:
        return self._close_review(model_id, "reject", reason)

    def revoke_model(self, model_id: str, reason: str) -> dict[str, Any]:
        return self._close_review(model_id, "revoke", reason)

    def _close_review(self, model_id: str, action: str, reason: str) -> dict[str, Any]:
        path = f"/v1/models/{_segment(model_id)}/{action}"
        return self.request("POST", path, json={"reason": reason})

    # -- administration (a department's token) ---------------------------------------

    def publish_policy(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Put a policy bundle's content in force: its digest, the one before, the audit."""
        return self.request("POST", "/v1/admin/policy", json=bundle)

    def apply_catalog(self, document: dict[str, Any]) -> dict[str, Any]:
        """Publish a catalog document: its digest, counts, warnings, the audit entry."""
        return self.request("PUT", "/v1/admin/catalog", json=document)

    def catalog(self) -> dict[str, Any]:
        """The catalog in force, as a document."""
        return self.request("GET", "/v1/admin/catalog")

    # -- encrypted scoring (a regulator's token) ------------------------------------

    def filing(self, model_id: str) -> dict[str, Any]:
        """An HE model's filing (算法备案) as a regulator takes it away."""
        return self.request("GET", f"/v1/he/models/{_segment(model_id)}/filing")
