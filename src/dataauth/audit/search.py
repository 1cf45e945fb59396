"""Reading the log as a regulator does: entries by operator, kind, outcome and time, the
counts of traffic, one entry's stored bytes.

The operator, the kind and the time are columns of their own; the outcome lives only in
the entry's canonical bytes, so it is read there: by the database's JSON functions for
counts, and by parsing each row for a filtered page (which then scans a bounded window,
saying where the next page starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, text

from dataauth.audit.heads import TreeHead
from dataauth.audit.ledger import HEAD_COLUMNS
from dataauth.audit.ledger import _head as head_of

SCAN_WINDOW = 5000
"""Rows read at most for one page filtered by outcome: a page's cost stays bounded."""


def entry_time(value: str) -> str:
    """An ISO 8601 time as the log stamps entries (UTC, microseconds, ``Z``), so it
    compares as a string; raises ValueError on anything else."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Filter:
    operator: str | None = None
    kind: str | None = None
    outcome: str | None = None
    since: str | None = None
    """Entries stamped at or after this (``entry_time`` form)."""
    until: str | None = None
    """Entries stamped before this."""

    def where(self) -> tuple[str, dict[str, Any]]:
        """The SQL condition on the columns (not the outcome) and its values."""
        clauses, values = [], {}
        for column, name, value in (
            ("operator_id", "operator", self.operator),
            ("operation", "kind", self.kind),
        ):
            if value is not None:
                clauses.append(f"{column} = :{name}")
                values[name] = value
        if self.since is not None:
            clauses.append("time >= :since")
            values["since"] = self.since
        if self.until is not None:
            clauses.append("time < :until")
            values["until"] = self.until
        return " AND ".join(clauses) or "1 = 1", values


def find_entries(
    engine: Engine, start: int, limit: int, where: Filter
) -> tuple[list[tuple[int, bytes, bytes]], int | None]:
    """(index, leaf data, leaf hash) of matching entries from ``start`` on, and the index
    the next page starts at (None at the end of the log)."""
    condition, values = where.where()
    window = limit if where.outcome is None else SCAN_WINDOW
    query = text(
        'SELECT "index", canonical, leaf_hash FROM audit_entry '
        f'WHERE "index" >= :start AND {condition} ORDER BY "index" LIMIT :window'
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {**values, "start": start, "window": window}).all()
    found: list[tuple[int, bytes, bytes]] = []
    for index, data, leaf in rows:
        data = bytes(data)
        if where.outcome is not None and orjson.loads(data)["entry"].get("outcome") != (
            where.outcome
        ):
            continue
        found.append((int(index), data, bytes(leaf)))
        if len(found) == limit:
            return found, int(index) + 1
    return found, (int(rows[-1][0]) + 1 if len(rows) == window else None)


def stored_entry(engine: Engine, index: int) -> tuple[str, bytes] | None:
    """(operator, leaf data as stored) of entry ``index``: the bytes its leaf hash covers."""
    with engine.connect() as connection:
        row = connection.execute(
            text('SELECT operator_id, canonical FROM audit_entry WHERE "index" = :i'), {"i": index}
        ).one_or_none()
    return None if row is None else (row[0], bytes(row[1]))


def _outcome(engine: Engine) -> str:
    if engine.dialect.name == "postgresql":
        return "(convert_from(canonical, 'UTF8')::jsonb -> 'entry' ->> 'outcome')"
    return "json_extract(CAST(canonical AS TEXT), '$.entry.outcome')"


def traffic(engine: Engine, where: Filter) -> dict[str, Any]:
    """Counts of entries by kind and outcome, and by hour and outcome."""
    condition, values = where.where()
    outcome = _outcome(engine)
    if where.outcome is not None:
        condition += f" AND {outcome} = :outcome"
        values["outcome"] = where.outcome
    by_kind = text(
        f"SELECT operation, {outcome} AS outcome, COUNT(*) FROM audit_entry "
        f"WHERE {condition} GROUP BY operation, {outcome} ORDER BY operation, outcome"
    )
    by_hour = text(
        f"SELECT substr(time, 1, 13) AS hour, {outcome} AS outcome, COUNT(*) FROM audit_entry "
        f"WHERE {condition} GROUP BY substr(time, 1, 13), {outcome} ORDER BY hour, outcome"
    )
    with engine.connect() as connection:
        kinds = connection.execute(by_kind, values).all()
        hours = connection.execute(by_hour, values).all()
    return {
        "total": sum(int(n) for _, _, n in kinds),
        "by_kind": [{"kind": k, "outcome": o, "count": int(n)} for k, o, n in kinds],
        "by_hour": [{"hour": h + ":00Z", "outcome": o, "count": int(n)} for h, o, n in hours],
    }


def recent_heads(engine: Engine, before: int | None, limit: int) -> list[TreeHead]:
    """Up to ``limit`` signed heads, newest first, of size below ``before`` if given."""
    query = f"SELECT {HEAD_COLUMNS} FROM signed_tree_head"
    values: dict[str, Any] = {"limit": limit}
    if before is not None:
        query += " WHERE size < :before"
        values["before"] = before
    with engine.connect() as connection:
        rows = connection.execute(text(query + " ORDER BY size DESC LIMIT :limit"), values).all()
    return [head_of(row) for row in rows]
