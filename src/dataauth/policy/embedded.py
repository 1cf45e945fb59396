"""The embedded engine: regopy (rego-cpp) in process, the bundle compiled once."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

import regopy

from dataauth.policy.bundle import Bundle, BundleError
from dataauth.policy.decision import ENTRYPOINT, Decision
from dataauth.policy.memo import Memoised

log = logging.getLogger(__name__)

# rego-cpp would print compile errors to stderr; they reach the caller as BundleError instead
regopy.set_default_log_level("None")


JSON_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|-?\d+(?:\.\d+)?[eE][-+]?\d+')


def rego_json(data: Any) -> str:
    """The data as JSON rego-cpp reads: it refuses an exponent on a mantissa with no
    point (Python writes a δ of 1e-8 as ``1e-08``), so such a number gets ``.0``."""

    def point(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith('"') or "." in token:
            return token
        mantissa, exponent = re.split("[eE]", token, maxsplit=1)
        return f"{mantissa}.0e{exponent}"

    return JSON_TOKEN.sub(point, json.dumps(data, ensure_ascii=False))


def compile_bundle(bundle: Bundle, entrypoints: tuple[str, ...] = (ENTRYPOINT,)) -> Any:
    """Compile the bundle's modules and data into a regopy bundle."""
    interpreter = regopy.Interpreter()
    try:
        for name, source in bundle.modules.items():
            interpreter.add_module(name, source)
        interpreter.add_data_json(rego_json(bundle.data))
        compiled = interpreter.build(None, list(entrypoints))
    except regopy.RegoError as exc:
        raise BundleError(f"the bundle does not compile: {exc}") from exc
    if not compiled.ok():
        raise BundleError("the bundle does not compile")
    return compiled


class EmbeddedEngine(Memoised):
    """Decisions from a compiled bundle. One interpreter, one evaluation at a time.

    rego-cpp cannot be interrupted mid-evaluation, so the timeout is enforced on the
    answer: a decision that took longer than the timeout is discarded and denied.
    Rego without recursion always terminates, so the only long evaluations are ones
    over very large inputs, which the spine keeps out (policy inputs hold counts).
    Decisions are memoised (``policy/memo.py``).
    """

    def __init__(self, bundle: Bundle, timeout_ms: float = 250.0, memo_size: int = 4096) -> None:
        super().__init__(memo_size)
        self.bundle = bundle
        self.digest = bundle.digest
        self.timeout = timeout_ms / 1000.0
        self._compiled = compile_bundle(bundle)
        self._interpreter = regopy.Interpreter()
        self._lock = threading.Lock()

    def _evaluate(self, policy_input: dict[str, Any], as_json: bytes) -> Decision:
        try:
            with self._lock:
                # timed from here: waiting for the interpreter behind other requests is
                # queueing, not the engine being slow
                started = time.perf_counter()
                self._interpreter.set_input(regopy.Input(policy_input))
                output = self._interpreter.query_bundle_entrypoint(self._compiled, ENTRYPOINT)
                ok, results = output.ok(), output.results
                took = time.perf_counter() - started
        except Exception as exc:  # an engine failure must deny, whatever raised
            log.warning("policy engine error: %s", type(exc).__name__)
            return Decision.deny("policy_error", "the policy engine failed; denied by default")
        if took > self.timeout:
            return Decision.deny("policy_timeout", "the policy engine was too slow; denied")
        if not ok:
            return Decision.deny("policy_error", "the policy engine failed; denied by default")
        if not results or not results[0].expressions:
            return Decision.deny("policy_undefined", "the policy gave no decision; denied")
        return Decision.parse(results[0].expressions[0])
