"""Decisions memoised on the input's canonical bytes, for the in-process engines.

A decision is a pure function of the bundle and the input (the time is part of the
input), so a burst of alike requests is decided once, and replay still gets the same
answer. An engine failure is not memoised: it is not an answer of the policy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

from dataauth.policy.decision import Decision

FAILURES = ("policy_error", "policy_timeout")
MEMO_BYTES = 4 << 20
"""The memo's keys, in bytes, at most: a batch's or a query's input is kilobytes, so a
bound on entries alone let the memo hold some 16 MiB before it stopped growing."""


class Memoised:
    """The memo around ``_evaluate``; an engine subclasses it and evaluates."""

    digest: str

    def __init__(self, memo_size: int = 4096) -> None:
        self._memo: OrderedDict[bytes, Decision] = OrderedDict()
        self._memo_size = memo_size
        self._memo_bytes = 0
        self._memo_lock = threading.Lock()

    def decide(self, policy_input: dict[str, Any]) -> Decision:
        try:
            key = orjson.dumps(policy_input, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return Decision.deny("policy_error", "the policy input is not JSON; denied")
        with self._memo_lock:
            cached = self._memo.get(key)
            if cached is not None:
                self._memo.move_to_end(key)
                return cached
        decision = self._evaluate(policy_input, key)
        if decision.reasons and decision.reasons[0]["code"] in FAILURES:
            return decision
        with self._memo_lock:
            if key not in self._memo:
                self._memo_bytes += len(key)
            self._memo[key] = decision
            while self._memo and (
                len(self._memo) > self._memo_size or self._memo_bytes > MEMO_BYTES
            ):
                oldest, _ = self._memo.popitem(last=False)
                self._memo_bytes -= len(oldest)
        return decision

    def _evaluate(self, policy_input: dict[str, Any], as_json: bytes) -> Decision:
        """The decision for the input, given also as its JSON (the memo's key)."""
        raise NotImplementedError
