"""Usage control: rate, daily quota and per-subject limits, counted atomically.

The limits are obligations (the policy's, merged with the licence's): the spine
charges a request against every counter its obligations name, all of them or none, in
one transaction under the database's write lock, so concurrent requests and several
gateway processes never spend a counter twice. A charge over a limit is refused with
the limit's name and the moment it resets.

Days run from midnight in the department's zone (``DATAAUTH_TIMEZONE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.store.statements import Rows, Writer, relaxed


class UsageCounter(SQLModel, table=True):
    __tablename__ = "usage_counter"

    key: str = Field(primary_key=True)
    window: int = Field(primary_key=True)
    used: int


@dataclass(frozen=True)
class Refusal:
    limit: str
    """rate_per_minute, daily_quota or subject_per_day."""
    allowed: int
    resets: datetime

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.resets - now).total_seconds() + 0.999))


class Charge(NamedTuple):
    """One counter to spend (a tuple: a batch makes one per subject)."""

    key: str
    window: int
    amount: int
    allowed: int
    limit: str
    resets: datetime


@dataclass(frozen=True)
class Held:
    """An operator's counters as they stand (``UsageMeter.held``)."""

    rate: dict[str, int]
    """Requests this minute, by scope ("product|purpose")."""
    quota: dict[str, int]
    """Subjects today, by scope."""
    subjects: int
    """Subjects asked about today (a count, never which)."""
    most: int
    """The most times today any one subject was asked about."""


class UsageMeter:
    def __init__(self, engine: Engine, timezone: str = "Asia/Shanghai") -> None:
        self.engine = engine
        self.zone = ZoneInfo(timezone)
        self._writer = Writer(engine, "usage_counter", on_connect=relaxed)
        self._upsert = Rows(
            engine,
            # "window" is quoted: PostgreSQL reserves the word
            'INSERT INTO usage_counter (key, "window", used)',
            3,
            'ON CONFLICT (key, "window") DO UPDATE SET used = usage_counter.used + excluded.used '
            'RETURNING key, "window", used',
        )

    def charges(
        self,
        now: datetime,
        scope: str,
        subjects: Sequence[str],
        limits: dict[str, Any],
    ) -> list[Charge]:
        """The counters a request of ``len(subjects)`` subjects spends under ``limits``."""
        local = now.astimezone(self.zone)
        minute = int(now.timestamp()) // 60
        next_minute = datetime.fromtimestamp((minute + 1) * 60, tz=now.tzinfo)
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        day = local.toordinal()
        charges = []
        if isinstance(limits.get("rate_per_minute"), int):
            charges.append(
                Charge(
                    f"rate|{scope}",
                    minute,
                    1,
                    limits["rate_per_minute"],
                    "rate_per_minute",
                    next_minute,
                )
            )
        if isinstance(limits.get("daily_quota"), int):
            charges.append(
                Charge(
                    f"quota|{scope}",
                    day,
                    len(subjects),
                    limits["daily_quota"],
                    "daily_quota",
                    midnight,
                )
            )
        if isinstance(limits.get("subject_per_day"), int):
            operator = scope.split("|", 1)[0]
            per_subject: dict[str, int] = {}
            for subject in subjects:
                per_subject[subject] = per_subject.get(subject, 0) + 1
            charges.extend(
                Charge(
                    f"subject|{operator}|{subject}",
                    day,
                    count,
                    limits["subject_per_day"],
                    "subject_per_day",
                    midnight,
                )
                for subject, count in per_subject.items()
            )
        return charges

    def held(self, operator: str, now: datetime) -> Held:
        """What ``operator`` has spent of its counters now: this minute's requests and
        today's subjects per scope (product and purpose), and today's per-subject counts
        as aggregates only (how many subjects, the most any one was asked about)."""
        minute = int(now.timestamp()) // 60
        day = now.astimezone(self.zone).toordinal()
        rate: dict[str, int] = {}
        quota: dict[str, int] = {}
        with self.engine.connect() as connection:
            for counter, window, into in (("rate", minute, rate), ("quota", day, quota)):
                prefix = f"{counter}|{operator}|"
                rows = connection.execute(
                    text(
                        'SELECT key, used FROM usage_counter WHERE "window" = :window '
                        "AND substr(key, 1, :n) = :prefix"
                    ),
                    {"window": window, "n": len(prefix), "prefix": prefix},
                )
                for key, used in rows:
                    into[key[len(prefix) :]] = int(used)
            prefix = f"subject|{operator}|"
            count, most = connection.execute(
                text(
                    'SELECT COUNT(*), COALESCE(MAX(used), 0) FROM usage_counter WHERE "window" = '
                    ":window AND substr(key, 1, :n) = :prefix"
                ),
                {"window": day, "n": len(prefix), "prefix": prefix},
            ).one()
        return Held(rate, quota, int(count), int(most))

    def charge(self, charges: list[Charge]) -> Refusal | None:
        """Spend every charge, or none and say which limit refused.

        Spent first and checked after: the upsert returns each counter's new count, so a
        batch's thousands of counters are probed once, not read and then written; a
        count over its limit undoes the whole charge before the transaction commits."""
        if not charges:
            return None
        # one row per counter (the same counter named twice is spent twice, as one row)
        spend: dict[tuple[str, int], int] = {}
        for c in charges:
            spend[(c.key, c.window)] = spend.get((c.key, c.window), 0) + c.amount
        with self._writer.transaction() as cursor:
            cursor.execute("SAVEPOINT charge")
            # in key order, as the table's B-tree holds them (see ``DisclosureLedger``)
            ordered = sorted((k, w, n) for (k, w), n in spend.items())
            rows = self._upsert.insert(cursor, ordered)
            used = {(key, window): count for key, window, count in rows}
            for charge in charges:
                if used[(charge.key, charge.window)] > charge.allowed:
                    # the transaction then commits no change
                    cursor.execute("ROLLBACK TO SAVEPOINT charge")
                    return Refusal(charge.limit, charge.allowed, charge.resets)
        return None
