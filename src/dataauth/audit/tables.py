"""Audit entries in the gateway database. Append-only: the code has no update or delete."""

from __future__ import annotations

from sqlalchemy import Index
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


class SignedTreeHead(SQLModel, table=True):
    __tablename__ = "signed_tree_head"
    # the last head each key signed, for the keys a rotation or revocation retired
    __table_args__ = (Index("ix_signed_tree_head_key_id_size", "key_id", "size"),)

    size: int = Field(primary_key=True)
    root: bytes
    time: str
    key_id: str
    algorithm: str
    signature: bytes
    prev: str = Field(unique=True)
    """Digest of the head before it ("" for the first): dropping a head breaks the chain."""


class TreeHeadCheckpoint(SQLModel, table=True):
    """Each head's size and root as a C2SP checkpoint in a signed note (an Ed25519 note key
    named by the log's origin): what tlog clients and witnesses read. Written with its
    head; a head signed before there were checkpoints gets its own at the next start."""

    __tablename__ = "tree_head_checkpoint"

    size: int = Field(primary_key=True)
    note: bytes


class CheckpointKey(SQLModel, table=True):
    """Every note key that has signed a checkpoint, as a vkey (``origin+hexid+base64``)."""

    __tablename__ = "checkpoint_key"

    vkey: str = Field(primary_key=True)
    origin: str


class PolicyBundleRecord(SQLModel, table=True):
    """Every bundle the gateway has decided with, by digest, so replay can find it."""

    __tablename__ = "policy_bundle"

    digest: str = Field(primary_key=True)
    content: bytes
    """Canonical JSON of {"modules", "data"}: what the digest covers."""
    first_used: str


class AuditKey(SQLModel, table=True):
    """Every public key that has signed a tree head: a regulator needs the old ones too."""

    __tablename__ = "audit_key"

    key_id: str = Field(primary_key=True)
    algorithm: str
    public_key_pem: str


class PolicyPublication(SQLModel, table=True):
    """Which bundle is in force: the latest publication. The first is the seed."""

    __tablename__ = "policy_publication"

    seq: int | None = Field(default=None, primary_key=True)
    digest: str
    previous: str
    published_by: str
    time: str


class AuditTimestamp(SQLModel, table=True):
    """RFC 3161 tokens over signed tree heads, from the configured TSA. Append-only."""

    __tablename__ = "audit_timestamp"

    seq: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    """The size of the head stamped (``audit.timestamps.stamped_bytes`` of it)."""
    token: bytes
    """The TimeStampToken as the TSA returned it, DER."""
    gen_time: str
    """The token's own time (genTime), RFC 3339: a read of it, the token is the proof."""


class WitnessCosignature(SQLModel, table=True):
    """A witness's cosignature (c2sp.org/tlog-cosignature) of the checkpoint of a head."""

    __tablename__ = "witness_cosignature"
    # a pusher asks each witness's newest cosigned size once per push round
    __table_args__ = (Index("ix_witness_cosignature_witness_size", "witness", "size"),)

    size: int = Field(primary_key=True)
    witness: str = Field(primary_key=True)
    """The witness's vkey."""
    line: str
    """The signature line as the witness sent it, ready to append to the checkpoint note."""
