"""What the department's database holds: its tables, their columns and type families.

Read by inspection only (no row is read), so that a catalog is checked against the
database it describes before it is published.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, inspect
from sqlalchemy.types import TypeEngine

FAMILIES = {int: "integer", float: "number", Decimal: "number", str: "string"}


def family(kind: TypeEngine) -> str | None:
    """integer, number, string or date; None for a type of none of these (a blob, JSON)."""
    try:
        python = kind.python_type
    except NotImplementedError:
        return None
    if issubclass(python, dt.date):  # datetime too: a date with a time is still a date
        return "date"
    if issubclass(python, bool):
        return None
    return next((name for base, name in FAMILIES.items() if issubclass(python, base)), None)


def tables(engine: Engine) -> dict[str, dict[str, str | None]]:
    """Every table (and view) of the database: its columns and each one's type family."""
    inspector = inspect(engine)
    found: dict[str, dict[str, str | None]] = {}
    for table in [*inspector.get_table_names(), *inspector.get_view_names()]:
        found[table] = {c["name"]: family(c["type"]) for c in inspector.get_columns(table)}
    return found


def agrees(declared: str, actual: str | None, sqlite: bool) -> bool:
    """Whether a column declared ``declared`` may be one the database types ``actual``.
    An integer is a number; SQLite has no date type, so its dates may be ISO text."""
    if actual is None or declared == actual:
        return True
    if declared == "number" and actual == "integer":
        return True
    return declared == "date" and actual == "string" and sqlite
