"""One audit writer for all of a server's worker processes, so their entries share fsyncs.

Each worker process has its own group commit (``AuditLog``); on its own, a worker's
leader writes its batch under the log's write lock while the other workers' leaders wait
for it, then write theirs: one durable commit (one fsync) per worker per turn.
``dataauth serve --workers N`` therefore runs a ``WriterServer`` in its own process: the
workers hand their entries to it over a Unix socket (``WriterClient``), its group commit
writes the entries of every worker queued at once in one transaction, and each worker
hears back only once its entry is committed. A worker still answers only after its
entry is durable: the writer's answer is sent after the commit returns.

The writer takes the same write lock as everyone else (``AuditLog.append_with`` in the
workers, a worker that cannot reach it), so indexes stay consecutive whoever writes.
A worker that cannot connect to the writer (none started, or gone) writes its entries
itself, as it would alone; one whose writer goes away after the entry was sent cannot
know whether it was written, and fails the append (no answer leaves).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import threading
from contextlib import suppress
from typing import Any

import orjson

from dataauth.audit.log import AuditLog

ENVIRONMENT = "DATAAUTH_AUDIT_WRITER"
"""Where the workers of ``dataauth serve`` find their writer's socket (set by serve)."""

_REQUEST = struct.Struct("!II")
"""An entry handed over: the length of its row's columns (JSON), then of its leaf head."""
_ANSWER = struct.Struct("!q32sH")
"""The writer's answer: the index (-1 if not written), the leaf hash, an error's length."""


class EntryNotAcknowledged(Exception):
    """The writer went away after an entry was sent: it may or may not be in the log."""


def _receive(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return bytes(data)


class WriterClient:
    """A worker's side: one connection per thread, each with one entry in flight."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> socket.socket | None:
        connection: socket.socket | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(self.path)
            except OSError:
                connection.close()
                return None
            self._local.connection = connection
        return connection

    def write(self, row: dict[str, Any], head: bytes) -> tuple[int, bytes] | None:
        """The entry's index and leaf hash once the writer has committed it; None if no
        writer could be reached (no whole entry was sent: the caller writes it itself).
        A writer that went away after the whole entry was sent may or may not have
        written it: ``EntryNotAcknowledged``."""
        connection = self._connection()
        if connection is None:
            return None
        # orjson: a tenth of the stdlib's time for the same JSON (the writer reads either)
        columns = orjson.dumps([row["time"], row["operator_id"], row["operation"], row["allowed"]])
        try:
            connection.sendall(_REQUEST.pack(len(columns), len(head)) + columns + head)
        except OSError:
            # not all of it went: the writer, which reads only whole entries, is gone
            self._local.connection = None
            connection.close()
            return None
        try:
            index, leaf, error = _ANSWER.unpack(_receive(connection, _ANSWER.size))
            reason = _receive(connection, error).decode() if error else ""
        except OSError as exc:
            self._local.connection = None
            connection.close()
            raise EntryNotAcknowledged(type(exc).__name__) from exc
        if index < 0:
            raise EntryNotAcknowledged(reason)
        return index, leaf


class WriterServer:
    """The writer: one thread that reads what every connected worker thread sent, writes
    it all in one transaction, answers each, and reads again. What arrives while a
    commit runs waits in the sockets' buffers for the next: group commit, without a
    thread or a hand-off per entry."""

    def __init__(self, log: AuditLog, path: str) -> None:
        self.log = log
        self.path = path
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # only this user's processes may hand in entries
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(256)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading within half a second (a group being written is finished)."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stopping:
                batch: list[tuple[socket.socket, dict[str, Any], bytes]] = []
                for key, _ in self._selector.select(timeout=0.5):
                    if key.data is None:
                        self._accept()
                        continue
                    connection: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        batch.extend(self._read(connection, key.data))
                    except (ValueError, TypeError):  # not what a worker sends: it goes
                        with suppress(KeyError, ValueError):
                            self._selector.unregister(connection)
                        connection.close()
                if batch:
                    self._write(batch)
        finally:
            # stopped, or broken: no worker may wait on a writer that no longer reads.
            # Those waiting now hear the connection close (their append fails); those
            # that connect later find no socket and write their own entries.
            with suppress(FileNotFoundError):
                os.unlink(self.path)
            for key in list(self._selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self._selector.close()

    def _accept(self) -> None:
        assert self._listener is not None
        with suppress(BlockingIOError):
            connection, _ = self._listener.accept()
            connection.setblocking(False)
            self._selector.register(connection, selectors.EVENT_READ, bytearray())

    def _read(
        self, connection: socket.socket, buffer: bytearray
    ) -> list[tuple[socket.socket, dict[str, Any], bytes]]:
        """The entries complete in what ``connection`` has sent so far."""
        try:
            data = connection.recv(1 << 16)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:  # the worker closed, or died: what it sent whole is still written
            self._selector.unregister(connection)
        buffer += data
        entries = []
        while len(buffer) >= _REQUEST.size:
            length, head_length = _REQUEST.unpack_from(buffer)
            end = _REQUEST.size + length + head_length
            if len(buffer) < end:
                break
            time, operator, operation, allowed = json.loads(
                buffer[_REQUEST.size : end - head_length]
            )
            row = {"time": time, "operator_id": operator, "operation": operation,
                   "allowed": bool(allowed)}  # fmt: skip
            entries.append((connection, row, bytes(buffer[end - head_length : end])))
            del buffer[:end]
        if not data:
            connection.close()
        return entries

    def _write(self, batch: list[tuple[socket.socket, dict[str, Any], bytes]]) -> None:
        """One transaction for the batch; then each sender hears of its own entry."""
        try:
            written = self.log.write_heads([(row, head) for _, row, head in batch])
            answers = [_ANSWER.pack(index, leaf, 0) for index, leaf in written]
        except Exception as exc:
            reason = type(exc).__name__.encode()
            answers = [_ANSWER.pack(-1, b"", len(reason)) + reason] * len(batch)
        for (connection, _, _), answer in zip(batch, answers, strict=True):
            # a worker thread waits for its answer before it sends again: a few dozen
            # bytes go into an empty socket buffer at once
            with suppress(OSError):
                connection.setblocking(True)
                connection.sendall(answer)
                connection.setblocking(False)
