"""The regorus engine: Microsoft's Rust Rego interpreter in process (celine-regorus).

Three properties of the binding shape this module:

- Values cross as JSON text only. Its Python-object conversion reads ``False`` as the
  number 0 (a bool is an int in Python), so ``licence.revoked: false`` would be truthy
  in Rego, and it turns every integer it returns into a float.
- An ``Engine`` is bound to the thread that made it (pyo3 "unsendable": another thread
  touching it panics), so each thread compiles its own from the bundle's sources.
- Only the tree-walking interpreter is used: the binding's compiled RVM (``Program``)
  is faster but got 7 of the 79 decision-table cases wrong in regorus 0.9.1.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import regorus

from dataauth.policy.bundle import Bundle, BundleError
from dataauth.policy.decision import ENTRYPOINT, Decision
from dataauth.policy.memo import Memoised

log = logging.getLogger(__name__)

RULE = "data." + ENTRYPOINT.replace("/", ".")
UNDEFINED = '"<undefined>"'  # what eval_rule_as_json answers for an undefined rule


def is_engine_failure(exc: BaseException) -> bool:
    """An exception from regorus, a Rust panic included (pyo3 raises that as a
    BaseException, so ``except Exception`` alone would let it through the deny)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def compile_engine(bundle: Bundle) -> regorus.Engine:
    """A regorus engine holding the bundle's modules and data."""
    engine = regorus.Engine()
    try:
        for name, source in bundle.modules.items():
            engine.add_policy(name, source)
        engine.add_data_json(orjson.dumps(bundle.data).decode())
    except BaseException as exc:
        if not is_engine_failure(exc):
            raise
        first = str(exc).split("Stack backtrace", 1)[0].strip()
        raise BundleError(f"the bundle does not compile: {first}") from None
    return engine


class RegorusEngine(Memoised):
    """Decisions by regorus, one engine per thread, memoised (``policy/memo.py``).

    As with the regopy engine, the timeout is enforced on the answer: regorus cannot
    be interrupted, so a decision that took longer than the timeout is denied.
    """

    def __init__(self, bundle: Bundle, timeout_ms: float = 250.0, memo_size: int = 4096) -> None:
        super().__init__(memo_size)
        self.bundle = bundle
        self.digest = bundle.digest
        self.timeout = timeout_ms / 1000.0
        self._local = threading.local()
        self._local.engine = compile_engine(bundle)  # a bundle that does not compile fails here

    def _engine(self) -> regorus.Engine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = compile_engine(self.bundle)
        return engine

    def _evaluate(self, policy_input: dict[str, Any], as_json: bytes) -> Decision:
        try:
            engine = self._engine()
            started = time.perf_counter()
            engine.set_input_json(as_json.decode())
            answer = engine.eval_rule_as_json(RULE)
            took = time.perf_counter() - started
        except BaseException as exc:
            if not is_engine_failure(exc):
                raise
            log.warning("policy engine error: %s", type(exc).__name__)
            return Decision.deny("policy_error", "the policy engine failed; denied by default")
        if took > self.timeout:
            return Decision.deny("policy_timeout", "the policy engine was too slow; denied")
        if answer == UNDEFINED:
            return Decision.deny("policy_undefined", "the policy gave no decision; denied")
        return Decision.parse(orjson.loads(answer))
