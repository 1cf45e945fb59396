"""Audit entries in the gateway database. Append-only: the code has no update or delete."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    index: int = Field(primary_key=True)
    time: str = Field(index=True)
    """UTC, ISO 8601 with microseconds: the entry's own time, for range queries."""
    operator_id: str = Field(index=True)
    operation: str
    allowed: bool
    canonical: bytes
    """The entry as RFC 8785 canonical JSON: the bytes the leaf hash covers."""
    leaf_hash: bytes
    """SHA-256(0x00 || canonical), the RFC 6962 leaf hash."""
