"""The deployment engine: an OPA server (a sidecar), through opa-python-client.

The bundle's modules and data are pushed to the server, and each decision queries
``data.dataauth.decision`` with the same input the embedded engine gets: one contract,
two engines. A server that is unreachable, slower than the timeout, or answers off the
contract gives a deny with its reason, never an allow.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlparse

import requests
from opa_client.errors import RegoParseError
from opa_client.opa import OpaClient

from dataauth.policy.bundle import Bundle
from dataauth.policy.decision import Decision

log = logging.getLogger(__name__)


class OpaServerEngine:
    def __init__(self, bundle: Bundle, url: str, timeout_ms: float = 250.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an OPA server URL: {url!r}")
        self.bundle = bundle
        self.digest = bundle.digest
        self.client = OpaClient(
            host=parsed.hostname,
            port=parsed.port or 8181,
            ssl=parsed.scheme == "https",
            timeout=timeout_ms / 1000,
            retries=0,
        )
        self._pushed = False
        self._lock = threading.Lock()
        self._push()

    def _push(self) -> bool:
        """Load the bundle into the server; False (and a deny later) where it cannot."""
        with self._lock:
            if self._pushed:
                return True
            try:
                self._push_modules()
                for key, value in self.bundle.data.items():
                    self.client.update_or_create_data(value, key)
            except Exception as exc:
                log.warning("pushing the bundle to OPA failed: %s: %.300s", type(exc).__name__, exc)
                return False
            self._pushed = True
            return True

    def _push_modules(self) -> None:
        """Push every module, in as many rounds as their references need.

        OPA compiles a pushed module with those it already has, so one that uses a rule
        of a module not yet pushed is refused; it is pushed again once that one is in.
        A round in which nothing goes in ends it with the last refusal.
        """
        pending = {
            name.replace("/", "_").removesuffix(".rego"): source
            for name, source in self.bundle.modules.items()
        }
        while pending:
            refused: dict[str, str] = {}
            error: Exception | None = None
            for policy_id, source in pending.items():
                try:
                    self.client.update_policy_from_string(source, policy_id, rego_compat=False)
                except RegoParseError as exc:
                    refused[policy_id], error = source, exc
            if error is not None and len(refused) == len(pending):
                raise error
            pending = refused

    def decide(self, policy_input: dict[str, Any]) -> Decision:
        if not self._push():
            return Decision.deny("policy_unavailable", "the policy server cannot be reached")
        try:
            answer = self.client.query_rule(
                input_data=policy_input, package_path="dataauth", rule_name="decision"
            )
        except requests.Timeout:
            return Decision.deny("policy_timeout", "the policy server was too slow; denied")
        except Exception as exc:
            log.warning("OPA query failed: %s", type(exc).__name__)
            return Decision.deny("policy_unavailable", "the policy server failed; denied")
        if not isinstance(answer, dict) or "result" not in answer:
            return Decision.deny("policy_undefined", "the policy server gave no decision; denied")
        return Decision.parse(answer["result"])
