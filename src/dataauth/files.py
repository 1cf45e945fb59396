"""What the gateway writes is its own: files 0600, folders 0700.

The gateway database holds audit entries and keyed subject hashes, the demo domain holds
(synthetic) personal data, the keys folder the secrets: none is for other local users.
A process umask of 0o077 makes everything created from then on private, whoever creates
it (SQLite and its -wal, -shm and -journal files, Alembic's lock, prometheus_client's
metrics files, an audit export); ``make_private`` tightens what an older version left.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".migrate-lock")


def private_umask() -> None:
    """From now on this process (and the workers it starts) creates private files."""
    os.umask(PRIVATE_UMASK)


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    return None


def make_private(data_dir: Path, *sqlite_urls: str) -> None:
    """Take group and other access away from the data directory, what the gateway keeps
    in it, and the SQLite databases named (with their companion files). Only these: the
    data directory may be a folder that holds other things too."""
    paths = [data_dir, data_dir / "keys", data_dir / "metrics"]
    if (data_dir / "keys").is_dir():
        paths += (data_dir / "keys").iterdir()
    if (data_dir / "metrics").is_dir():
        paths += (data_dir / "metrics").rglob("*")
    for url in sqlite_urls:
        database = sqlite_path(url)
        if database is not None:
            paths += [Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS]
    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            path.chmod(mode & 0o700)
