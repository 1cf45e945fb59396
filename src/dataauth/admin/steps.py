"""What every administrative step shares: who takes it, and its entry in the log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dataauth.audit.log import AuditLog, Receipt, Record
from dataauth.canonical import utc_now
from dataauth.identity.access import Access
from dataauth.policy.store import PolicyStore


class Steps:
    """Authentication and the audit record for a department's or an operator's step."""

    def __init__(
        self,
        access: Access,
        audit: AuditLog,
        policy: PolicyStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.access = access
        self.audit = audit
        self.policy = policy
        self.clock = clock

    def record(
        self, actor: str, operation: dict[str, Any], *, purpose: str, request: bytes, outcome: str
    ) -> Receipt:
        """Log a step: the actor, what it did (metadata), the commitment to its request."""
        return self.audit.append(
            Record.action(
                self.clock(),
                actor,
                operation,
                self.policy.engine().digest,
                purpose=purpose,
                request=request,
                outcome=outcome,
            )
        )
