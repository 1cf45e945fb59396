"""What a witness remembers: per origin, the size and root it last cosigned.

One JSON file, replaced whole and atomically (a temporary file, fsync, rename, fsync
of the folder): a crash leaves the old state or the new one, never half of either. A
cosignature leaves only once the state that backs it is on disk.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Seen:
    size: int
    root: bytes


class State:
    """The witness's record of each log, read and written under one lock.

    The lock is both a thread lock and an exclusive ``flock`` on a companion file, so
    two requests for one origin, in one process or two, cannot both check against the
    same old size and then roll each other back (tlog-witness's race).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def _read(self) -> dict[str, Seen]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {
            origin: Seen(int(item["size"]), base64.b64decode(item["root"]))
            for origin, item in raw.get("logs", {}).items()
        }

    def get(self, origin: str) -> Seen | None:
        with self._lock:
            return self._read().get(origin)

    @contextmanager
    def locked(self) -> Iterator[dict[str, Seen]]:
        """The state, held: what the block changes in the dict is written before the
        lock is let go (and only if the block did not raise)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                logs = self._read()
                before = dict(logs)
                yield logs
                if logs != before:
                    self._write(logs)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _write(self, logs: dict[str, Seen]) -> None:
        body = {
            "logs": {
                origin: {"size": seen.size, "root": base64.b64encode(seen.root).decode()}
                for origin, seen in sorted(logs.items())
            }
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself is durable
        finally:
            os.close(folder)
