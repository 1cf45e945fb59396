"""The contract between the spine and an operation kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from dataauth.accounts.disclosure import Disclosure

Purpose = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[a-z][a-z0-9-]*$",
    description="why the operator asks, as named in its licence (e.g. credit)",
)


class Call(Protocol):
    """A request as a kind receives it: it always names its purpose."""

    @property
    def purpose(self) -> str: ...

    def sent(self) -> bytes:
        """The request as the operator sent it (operation, target, body bytes): what the
        audit entry's commitment covers, so the operator can recompute it exactly."""
        ...


class Request(BaseModel):
    """Base of every operation body."""

    purpose: str = Purpose


@dataclass(frozen=True)
class ConsentNeed:
    """The product needs each subject's consent: the tokens sent, in subject order."""

    product: str
    tokens: list[str | None]


@dataclass
class Description:
    """What a request touches, as metadata the policy reads; and the plan to execute it.

    ``operation`` and ``facts`` go into the policy input and the audit log as they are:
    they hold no raw value of the data and no raw personal identifier. ``plan`` holds
    what execution needs (subject keys, claimed values) and is never logged.
    """

    operation: dict[str, Any]
    facts: dict[str, Any]
    plan: Any
    dataset_version: str | None = None
    subjects: list[str] = field(default_factory=list)
    """Keyed hashes of the subjects touched, for the audit entry."""
    consent: ConsentNeed | None = None


class OperationKind(Protocol):
    name: str

    def describe(self, call: Any) -> Description:
        """Turn a request into metadata, or raise a 4xx Problem for a malformed one."""
        ...

    def execute(self, plan: Any, obligations: dict[str, Any]) -> Any:
        """Compute in the domain, under the obligations."""
        ...

    def disclose(self, raw: Any, plan: Any, obligations: dict[str, Any]) -> dict[str, Any]:
        """Shape the raw result into exactly what the policy allows to leave."""
        ...

    def disclosures(self, plan: Any, obligations: dict[str, Any]) -> list[Disclosure]:
        """What the answer, released under these obligations, can tell about each subject
        it names: the spine charges it to the subjects' disclosure budgets before the
        answer is computed, where the decision obliges ``subject_budget``. A kind whose
        answers name no subject (groups, cohorts under noise) returns none."""
        ...
