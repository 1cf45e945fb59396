"""Appending audit entries: canonical JSON (RFC 8785), one row each, durable on return.

An entry holds metadata only: the policy input (keyed hashes, counts, column names),
the decision, and commitments to the request and the result. A commitment is
SHA-256(nonce || the request's bytes as sent, or the result's canonical JSON) with a
fresh 16-byte nonce that only the caller gets
back in its receipt: a plain digest of a request naming one ID number could be
reversed by trying every ID number; with the nonce the operator can still prove to a
regulator what it sent and received.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, insert, text

from dataauth.audit.tables import AuditEntry
from dataauth.canonical import canonical
from dataauth.store.statements import Writer, prepare

LEAF_PREFIX = b"\x00"


def leaf_data(index: int, entry: bytes) -> bytes:
    """The bytes a leaf covers: canonical ``{"entry": ..., "index": n}``.

    Binding the index into the leaf lets a verifier name the very entry that was
    dropped, inserted or moved. Spliced rather than re-serialised: "entry" sorts before
    "index", so this is the RFC 8785 form of that object.
    """
    return leaf_head(entry) + leaf_tail(index)


def leaf_head(entry: bytes) -> bytes:
    """The leaf's bytes before its index, known before the index is: so the entry can
    be hashed ahead, outside the write lock, and the index hashed on."""
    return b'{"entry":' + entry + b',"index":'


def leaf_tail(index: int) -> bytes:
    return b"%d}" % index


NONCE_SIZE = 16
NONCES_PER_DRAW = 256


class _Nonces:
    """Fresh nonces, drawn from the OS 256 at a time.

    Each draw (``os.urandom``) lets the interpreter go to another thread, and with dozens
    of appenders the caller then waits its turn to get it back: a context switch or two
    per entry for 16 bytes. ``list.pop`` is atomic, so threads share the pool without a
    lock; each nonce is handed out once. A forked child starts with an empty pool, so no
    two processes hand out the same nonce.
    """

    def __init__(self) -> None:
        self._pool: list[bytes] = []

    def take(self) -> bytes:
        try:
            return self._pool.pop()
        except IndexError:
            data = secrets.token_bytes(NONCE_SIZE * NONCES_PER_DRAW)
            fresh = [data[i : i + NONCE_SIZE] for i in range(0, len(data), NONCE_SIZE)]
            nonce = fresh.pop()
            self._pool.extend(fresh)
            return nonce

    def clear(self) -> None:
        self._pool.clear()


_nonces = _Nonces()
os.register_at_fork(after_in_child=_nonces.clear)


def commitment(nonce: bytes, value: Any) -> str:
    """SHA-256(nonce || bytes): bytes as they are, anything else as canonical JSON."""
    data = value if isinstance(value, bytes) else canonical(value)
    return "sha256:" + hashlib.sha256(nonce + data).hexdigest()


@dataclass(frozen=True)
class Receipt:
    entry: int
    leaf_hash: str
    nonce: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "leaf_hash": self.leaf_hash,
            "nonce": self.nonce,
            # a tree head covering the entry is signed within about HEAD_DELAY_MS; then:
            "proof": f"/v1/audit/proof/inclusion?index={self.entry}",
        }


@dataclass
class Record:
    """What the spine knows of one request when it is logged."""

    time: datetime
    operator: str
    operation: dict[str, Any]
    purpose: str
    policy_input: dict[str, Any] | None
    """None, with ``decision``, for an administrative entry (a policy publication)."""
    decision: dict[str, Any] | None
    policy_bundle: str
    dataset_version: str | None
    subjects: list[str]
    """Keyed hashes of the subjects touched: a department can answer "who looked me up"."""
    consents: list[str | None]
    """Digests of the consent tokens presented, per subject (never their content)."""
    request: bytes
    """The request as sent: the commitment covers these bytes exactly."""
    result: Any
    outcome: str
    """released, denied, limited, refused (by the kind, after an allow), failed, or
    rejected (malformed, before a decision); for an administrative entry its own word
    (published, submitted, approved ...)."""
    refusal: str | None = None
    """A rejected request's problem code: probing shows in the log, its content does not."""
    disclosure: list[dict[str, Any]] | None = None
    """What the answer was charged to each subject's disclosure budget, by keyed hash."""

    @classmethod
    def action(
        cls,
        time: datetime,
        actor: str,
        operation: dict[str, Any],
        policy_bundle: str,
        *,
        purpose: str,
        request: bytes,
        outcome: str,
        refusal: str | None = None,
    ) -> Record:
        """An administrative step (a publication, a review, a registration), or a request
        rejected before any decision (with its ``refusal`` code): no policy input or
        decision of its own, but the bundle in force is named."""
        return cls(
            time=time,
            operator=actor,
            operation=operation,
            purpose=purpose,
            policy_input=None,
            decision=None,
            policy_bundle=policy_bundle,
            dataset_version=None,
            subjects=[],
            consents=[],
            request=request,
            result=None,
            outcome=outcome,
            refusal=refusal,
        )


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Pending:
    row: dict[str, Any]
    head: bytes
    """The leaf data up to its index: ``{"entry":...,"index":``."""
    hasher: Any
    """SHA-256 over the leaf prefix and ``head``, done before the write lock is taken."""
    nonce: bytes
    index: int = -1
    leaf: bytes = b""
    error: BaseException | None = None
    # a lock held until the entry is written: a one-shot latch far cheaper than an Event
    done: threading.Lock = field(default_factory=_held_lock)


class EntryNotWritten(Exception):
    """A change's entry could not be committed, so neither was the change."""


T = TypeVar("T")


@contextmanager
def _logs_part() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise EntryNotWritten(type(exc).__name__) from exc


ROWS_PER_STATEMENT = 128
"""Rows in one multi-row INSERT: 7 values a row stays under SQLite's oldest limit of 999."""


class Remote(Protocol):
    """A writer in another process that commits entries for this one (``audit/writer.py``)."""

    def write(self, row: dict[str, Any], head: bytes) -> tuple[int, bytes] | None:
        """The committed entry's index and leaf hash; None if it could not be handed over."""
        ...


class AuditLog:
    """The append path. Entries get consecutive indexes from 0, with no gaps.

    Group commit: concurrent appends queue up; the first waiting thread becomes the
    leader, writes every queued entry in one transaction (one fsync), wakes each of
    their callers (and no one else), and leads on while entries keep arriving. Each
    caller still returns only once its own entry is durable. Indexes are
    assigned inside that transaction, under the database's write lock, so processes
    sharing the database never collide.

    The leader does as little as it can while it holds the lock: each caller has
    already serialised its entry and hashed all of its leaf but the index, and on
    SQLite a whole group goes in as one multi-row INSERT. Every call into the driver
    lets the other threads take the interpreter, and the leader then waits to get it
    back: one statement for the group rather than one step per row is what keeps
    large groups cheap.
    """

    def __init__(
        self,
        engine: Engine,
        on_commit: Callable[[], None] | None = None,
        remote: Remote | None = None,
    ) -> None:
        self.engine = engine
        self.on_commit = on_commit
        self.remote = remote
        self._table = AuditEntry.__table__
        self._insert = prepare(engine, insert(self._table))
        self._next_index = prepare(
            engine, text('SELECT COALESCE(MAX("index") + 1, 0) FROM audit_entry')
        )
        # positional drivers (SQLite) take a group as one statement: the VALUES repeated
        self._insert_head, _, self._insert_values = self._insert.sql.partition(" VALUES ")
        self._multirow = self._insert.order is not None and bool(self._insert_values)
        self._writer = Writer(engine, "audit_entry")  # the leader's; one leader at a time
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False

    def append(self, record: Record) -> Receipt:
        """Commit one entry; return only once it is durable."""
        pending = self._pending(record)
        if self.remote is not None:
            written = self.remote.write(pending.row, pending.head)
            if written is not None:
                if self.on_commit is not None:
                    self.on_commit()
                return Receipt(written[0], written[1].hex(), pending.nonce.hex())
        self._commit(pending)
        return Receipt(pending.index, pending.leaf.hex(), pending.nonce.hex())

    def write_heads(self, entries: list[tuple[dict[str, Any], bytes]]) -> list[tuple[int, bytes]]:
        """Commit entries other processes serialised (each its row's columns and its leaf
        data up to the index) in one transaction: each one's index and leaf hash, once
        durable. For the one writer of several processes (``audit/writer.py``)."""
        batch = [
            _Pending(row, head, hashlib.sha256(LEAF_PREFIX + head), b"") for row, head in entries
        ]
        self._write(batch)
        return [(pending.index, pending.leaf) for pending in batch]

    def _commit(self, pending: _Pending) -> None:
        """Queue ``pending`` for the group commit; return once it is written."""
        with self._lock:
            self._queue.append(pending)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        pending.done.acquire()
        if pending.error is not None:
            raise pending.error

    def append_with(self, change: Callable[[Connection], tuple[T, Record]]) -> tuple[T, Receipt]:
        """Make a change to the gateway database and commit its entry in the same
        transaction: both are in force, or neither is.

        ``change`` writes on the connection it is given (and nowhere else: another
        connection's write would wait on this one's lock), in a transaction that holds the
        log's write lock, so indexes stay consecutive across appends and processes; it
        returns its value and the entry to write. What ``change`` raises comes out as it
        is, the transaction rolled back; a failure of the log's part (the connection, its
        lock, the entry's insert, the commit) is ``EntryNotWritten``. Nothing in memory
        moves before the commit: the receipt, ``on_commit``, the caller's own state.
        """
        lock = self._writer.lock
        with lock.held():
            with _logs_part():
                connection = self.engine.connect()
            with connection:
                with _logs_part():
                    connection.exec_driver_sql(lock.begin)
                value, record = change(connection)
                with _logs_part():
                    pending = self._pending(record)
                    cursor = connection.connection.cursor()
                    try:
                        first, leaves = self._rows(cursor, [pending])
                    finally:
                        cursor.close()
                    connection.commit()
        if self.on_commit is not None:
            self.on_commit()
        return value, Receipt(first, leaves[0].hex(), pending.nonce.hex())

    def _pending(self, record: Record) -> _Pending:
        """The entry serialised, and its leaf hashed up to the index."""
        nonce = _nonces.take()
        entry = {
            "v": 1,
            "time": record.time.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "operator": record.operator,
            "operation": record.operation,
            "purpose": record.purpose,
            "policy_input": record.policy_input,
            "decision": record.decision,
            "policy_bundle": record.policy_bundle,
            "dataset_version": record.dataset_version,
            "subjects": record.subjects,
            "consents": record.consents,
            "request_digest": commitment(nonce, record.request),
            "result_digest": None if record.result is None else commitment(nonce, record.result),
            "outcome": record.outcome,
        }
        # only where there is one: entries of before keep their bytes and their form
        if record.refusal is not None:
            entry["refusal"] = record.refusal
        if record.disclosure:
            entry["disclosure"] = record.disclosure
        head = leaf_head(canonical(entry))
        return _Pending(
            {
                "time": entry["time"],
                "operator_id": record.operator,
                "operation": record.operation.get("kind", ""),
                "allowed": record.decision is None or bool(record.decision.get("allow")),
            },
            head,
            hashlib.sha256(LEAF_PREFIX + head),
            nonce,
        )

    def _write(self, batch: list[_Pending]) -> None:
        """Write ``batch`` in one transaction, giving each entry its index and leaf."""
        with self._writer.transaction() as cursor:
            first, leaves = self._rows(cursor, batch)
        for n, (pending, leaf) in enumerate(zip(batch, leaves, strict=True)):
            pending.index, pending.leaf = first + n, leaf  # only once durable
        if self.on_commit is not None:
            self.on_commit()

    def _rows(self, cursor: Any, batch: list[_Pending]) -> tuple[int, list[bytes]]:
        """Insert ``batch`` in the cursor's transaction, which holds the write lock: the
        first index it took, and each entry's leaf."""
        leaves = []
        cursor.execute(self._next_index.sql, self._next_index.bind({}))
        first = int(cursor.fetchone()[0])
        values = []
        for n, pending in enumerate(batch):
            suffix = leaf_tail(first + n)
            hasher = pending.hasher.copy()
            hasher.update(suffix)
            leaf = hasher.digest()
            leaves.append(leaf)
            row = pending.row | {
                "index": first + n,
                "canonical": pending.head + suffix,
                "leaf_hash": leaf,
            }
            values.append(self._insert.bind(row))
        if self._multirow:
            for start in range(0, len(values), ROWS_PER_STATEMENT):
                group = values[start : start + ROWS_PER_STATEMENT]
                sql = f"{self._insert_head} VALUES " + ", ".join([self._insert_values] * len(group))
                cursor.execute(sql, [value for row in group for value in row])
        else:
            cursor.executemany(self._insert.sql, values)
        return first, leaves

    def _lead(self) -> None:
        """Write queued batches until the queue is empty, then stop leading."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._leading = False
                    return
            try:
                self._write(batch)
            except BaseException as exc:
                for pending in batch:
                    pending.error = exc
            for pending in batch:
                pending.done.release()
