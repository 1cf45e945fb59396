"""The in-process engines by name, so live decisions, replay and what-if choose alike."""

from __future__ import annotations

from dataauth.config import POLICY_ENGINE
from dataauth.policy.bundle import Bundle
from dataauth.policy.embedded import EmbeddedEngine
from dataauth.policy.memo import Memoised
from dataauth.policy.regorus import RegorusEngine

IN_PROCESS: dict[str, type[EmbeddedEngine] | type[RegorusEngine]] = {
    "regorus": RegorusEngine,
    "embedded": EmbeddedEngine,  # regopy (rego-cpp)
}


def in_process_engine(
    bundle: Bundle, name: str = POLICY_ENGINE, timeout_ms: float = 250.0
) -> Memoised:
    """The engine ``name`` for the bundle. An out-of-process choice (``opa``) has no
    engine here, so it re-decides with the default one."""
    return IN_PROCESS.get(name, IN_PROCESS[POLICY_ENGINE])(bundle, timeout_ms)
