"""A test harness: the part of OPA's REST API the gateway uses, evaluated by OPA's Go engine.

No registry this project installs from ships an ``opa`` binary, but PyPI ships OPA's Go
engine as a library (opa-golib-python-bindings, OPA v1.20). This wraps it in the few
endpoints opa-python-client calls, with OPA's status codes and bodies, so the
OPA-server engine's decision table runs on OPA's own semantics over real HTTP:

- ``PUT /v1/policies/{id}`` (Rego text): 200 ``{}``; 400 where the policy set does not
  parse or compile, the set left as it was
- ``DELETE /v1/policies/{id}``: 200 ``{}``; 404 where there is none
- ``GET /v1/policies``: 200 ``{"result": [{"id", "raw"}, ...]}``
- ``PUT /v1/data/{path}`` (JSON): 204, the document at ``path`` replaced
- ``POST /v1/data/{path}`` with ``{"input": ...}``: 200 ``{"result": ...}``, 200 ``{}``
  where it is undefined, 500 ``internal_error`` where evaluation fails (a conflict)
- ``GET /health``: 200 ``{}``

It is not an OPA server: no bundles, no discovery, no decision logs, no authentication,
no query timeout. Each change to the policies or data builds a fresh engine from the
whole set (the bindings merge data and cannot replace it), as OPA recompiles on a
change. ``delay`` holds each decision back that long, for the tests of a slow server.

Run on its own (``python tests/opa_server.py [PORT]``) it serves until interrupted,
for ``DATAAUTH_TEST_OPA_URL`` or a gateway with ``DATAAUTH_POLICY_ENGINE=opa``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError


class Store:
    """The policies and data pushed so far, and the engine compiled from them."""

    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.engine = self._build(self.policies, self.data)

    @staticmethod
    def _build(policies: dict[str, str], data: dict[str, Any]) -> OpaEngine:
        engine = OpaEngine()
        try:
            engine.add_data(data)
            for policy_id, source in policies.items():
                engine.add_policy(policy_id, source)
            # the bindings compile lazily: a query makes them compile the whole set now
            engine.eval_query("true")
        except BaseException:
            engine.close()
            raise
        return engine

    def _replace(self, policies: dict[str, str], data: dict[str, Any]) -> None:
        """Compile the new set; keep it only where it compiles (OpaError otherwise)."""
        engine = self._build(policies, data)
        self.engine.close()
        self.engine, self.policies, self.data = engine, policies, data

    def put_policy(self, policy_id: str, source: str) -> None:
        with self.lock:
            self._replace({**self.policies, policy_id: source}, self.data)

    def delete_policy(self, policy_id: str) -> bool:
        with self.lock:
            if policy_id not in self.policies:
                return False
            policies = {k: v for k, v in self.policies.items() if k != policy_id}
            self._replace(policies, self.data)
            return True

    def put_data(self, path: list[str], value: Any) -> None:
        with self.lock:
            if not path:
                data = value
            else:
                data = json.loads(json.dumps(self.data))
                node = data
                for part in path[:-1]:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
                node[path[-1]] = value
            self._replace(self.policies, data)

    def evaluate(self, path: list[str], policy_input: Any) -> dict[str, Any]:
        """OPA's answer body: ``{"result": value}``, or ``{}`` where it is undefined."""
        with self.lock:
            try:
                return {"result": self.engine.eval_document(".".join(path), policy_input)}
            except OpaUndefinedError:
                return {}


class Handler(BaseHTTPRequestHandler):
    server: HarnessServer

    def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"code": code, "message": message})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _route(self) -> tuple[str, list[str]]:
        """("policies" | "data" | "health" | "", the path after it)."""
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        if parts == ["health"]:
            return "health", []
        if len(parts) >= 2 and parts[0] == "v1" and parts[1] in ("policies", "data"):
            return parts[1], parts[2:]
        return "", []

    def do_GET(self) -> None:
        kind, _ = self._route()
        if kind == "health":
            self._send(200, {})
        elif kind == "policies":
            store = self.server.store
            listing = [{"id": k, "raw": v} for k, v in store.policies.items()]
            self._send(200, {"result": listing})
        else:
            self._error(404, "resource_not_found", f"no such endpoint: {self.path}")

    def do_PUT(self) -> None:
        kind, path = self._route()
        body = self._body()
        try:
            if kind == "policies" and path:
                self.server.store.put_policy("/".join(path), body.decode("utf-8"))
                self._send(200, {})
            elif kind == "data":
                self.server.store.put_data(path, json.loads(body or b"null"))
                self._send(204)
            else:
                self._error(404, "resource_not_found", f"no such endpoint: {self.path}")
        except (OpaError, ValueError) as exc:
            self._error(400, "invalid_parameter", str(exc))

    def do_DELETE(self) -> None:
        kind, path = self._route()
        if kind == "policies" and path:
            try:
                found = self.server.store.delete_policy("/".join(path))
            except OpaError as exc:
                self._error(400, "invalid_parameter", str(exc))
                return
            if found:
                self._send(200, {})
            else:
                self._error(404, "resource_not_found", f"storage_not_found_error: {path}")
        else:
            self._error(404, "resource_not_found", f"no such endpoint: {self.path}")

    def do_POST(self) -> None:
        kind, path = self._route()
        if kind != "data":
            self._error(404, "resource_not_found", f"no such endpoint: {self.path}")
            return
        try:
            request = json.loads(self._body() or b"{}")
        except ValueError as exc:
            self._error(400, "invalid_parameter", f"body is not JSON: {exc}")
            return
        time.sleep(self.server.delay)
        try:
            answer = self.server.store.evaluate(path, request.get("input"))
        except OpaError as exc:
            self._error(500, "internal_error", str(exc))
            return
        self._send(200, answer)

    def log_message(self, *args: Any) -> None:
        pass


class HarnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.store = Store()
        self.delay = delay

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> HarnessServer:
        """Serve from a daemon thread; ``stop`` ends it."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up waiting (the slow-server tests) is not the harness's error
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self.store.lock:
            self.store.engine.close()


if __name__ == "__main__":
    server = HarnessServer(int(sys.argv[1]) if len(sys.argv) > 1 else 8181)
    print(f"OPA test harness on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
