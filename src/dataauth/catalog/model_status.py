"""Where a review leaves a submitted model: the one list the registry, the HTTP filter
and the command line take (in a module of its own, so the CLI loads no ORM for it)."""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["pending", "approved", "rejected", "revoked"]
"""pending until a department approves or rejects it; an approval may later be revoked."""
STATUSES: tuple[str, ...] = get_args(Status)
