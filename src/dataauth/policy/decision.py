"""The decision contract: ``data.dataauth.decision`` returns allow, reasons, obligations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ENTRYPOINT = "dataauth/decision"


@dataclass(frozen=True)
class Decision:
    allow: bool
    reasons: list[dict[str, str]] = field(default_factory=list)
    obligations: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def deny(cls, code: str, message: str) -> Decision:
        return cls(False, [{"code": code, "message": message}], {})

    @classmethod
    def parse(cls, value: Any) -> Decision:
        """Read an engine's answer; anything off the contract is a deny."""
        if not isinstance(value, dict):
            return cls.deny("policy_malformed", "the policy returned no decision object")
        allow, reasons, obligations = (
            value.get("allow"),
            value.get("reasons", []),
            value.get("obligations", {}),
        )
        if not isinstance(allow, bool) or not isinstance(obligations, dict):
            return cls.deny("policy_malformed", "the policy's decision is not of the contract")
        if not isinstance(reasons, list) or not all(
            isinstance(r, dict) and isinstance(r.get("code"), str) for r in reasons
        ):
            return cls.deny("policy_malformed", "the policy's reasons are not of the contract")
        reasons = [
            {"code": r["code"], "message": str(r.get("message", r["code"]))} for r in reasons
        ]
        return cls(allow, reasons, obligations if allow else {})

    def as_dict(self) -> dict[str, Any]:
        return {"allow": self.allow, "reasons": self.reasons, "obligations": self.obligations}


class PolicyEngine(Protocol):
    """Evaluates ``data.dataauth.decision`` of one bundle. Never raises: errors deny."""

    digest: str

    def decide(self, policy_input: dict[str, Any]) -> Decision: ...
