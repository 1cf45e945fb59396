"""The contract between the spine and an operation kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, Field

from dataauth.accounts.disclosure import Disclosure
from dataauth.accounts.usage import Charge
from dataauth.catalog.store import OperatorInfo
from dataauth.errors import forbidden

Purpose = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[a-z][a-z0-9-]*$",
    description="why the operator asks, as named in its licence (e.g. credit)",
)


class Request(BaseModel):
    """Base of every operation body."""

    purpose: str = Purpose

    def batch(self) -> int:
        """How many subjects the request names: the spine holds it to the gateway's
        ceiling before the kind reads a single one."""
        return 0


Body = TypeVar("Body", bound=Request)


@dataclass(frozen=True)
class Call(Generic[Body]):
    """A request as a kind receives it: its body, parsed, and the bytes it came in."""

    kind: str
    body: Body
    raw: bytes = b""
    """The body's bytes as received."""
    target: str | None = None
    """What the route names, where it names one (a product, a model)."""

    @property
    def purpose(self) -> str:
        return self.body.purpose

    def sent(self) -> bytes:
        """The request as the operator sent it (operation, target, body bytes): what the
        audit entry's commitment covers, so the operator can recompute it exactly."""
        head = self.kind if self.target is None else f"{self.kind} {self.target}"
        return head.encode() + b"\n" + self.raw


@dataclass(frozen=True)
class Route:
    """Where a kind is asked over HTTP; the HTTP layer makes the route from this."""

    path: str
    """``/v1/...``; a ``{name}`` in it (one at most) is handed to the kind as ``Call.target``."""
    body: type[Request]
    summary: str
    tag: str
    target: str | None = None
    """The pattern a target must match, where the path names one."""


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
    """Keyed hashes of the subjects named, for the audit entry: the spine holds a batch
    to its size (``max_batch``, and the ``batch_limit`` a decision obliges)."""
    consent: ConsentNeed | None = None
    counters: list[Charge] = field(default_factory=list)
    """Counters of the kind's own (a model's approved runs): the spine charges them with
    the policy's usage limits, all or none, once the request is allowed."""


class OperationKind(Protocol):
    name: str
    route: Route

    def describe(self, call: Call[Any], operator: OperatorInfo) -> Description:
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


def min_group_size(obligations: dict[str, Any]) -> int:
    """k, the fewest subjects a group, a cohort or a bin may hold to be answered. Fail
    closed: a bundle that forgets k must not release groups of one."""
    k = obligations.get("min_group_size")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise forbidden("obligation_missing", "the policy sets no minimum group size")
    return k
