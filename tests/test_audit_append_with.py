"""``AuditLog.append_with``: a change and its entry in one transaction, beside the
group-committed appends, in process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, text

from conftest import DATABASES, cluster
from dataauth.audit.ledger import Ledger
from dataauth.audit.log import LEAF_PREFIX, AuditLog, EntryNotWritten, Record, leaf_data
from dataauth.canonical import canonical
from dataauth.store.engine import gateway_engine
from test_admin_atomic import CLEARED, FAULT

pytestmark = pytest.mark.slow

STEPS = Table("step_change", MetaData(), Column("id", Integer, primary_key=True))


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    else:
        url = cluster().new_database()
    made = gateway_engine(url)
    STEPS.create(made)
    yield made
    made.dispose()


def action(n: int, kind: str) -> Record:
    return Record.action(datetime.now(UTC), "a-department", {"kind": kind, "n": n},
                         "sha256:" + "ab" * 32, purpose="test", request=b"%d" % n,
                         outcome="done")  # fmt: skip


class Refused(Exception):
    pass


def step(log: AuditLog, n: int) -> None:
    def change(connection) -> tuple[int, Record]:
        connection.execute(STEPS.insert(), {"id": n})
        if n % 5 == 0:
            raise Refused  # the change's own refusal: rolled back, no entry
        return n, action(n, "step")

    with suppress(Refused):
        log.append_with(change)


def rows(engine: Engine, sql: str) -> list:
    with engine.connect() as connection:
        return list(connection.execute(text(sql)))


def test_steps_and_appends_interleave_with_consecutive_indexes(engine):
    commits = []
    log = AuditLog(engine, on_commit=lambda: commits.append(1))

    def appends(thread: int) -> None:
        for n in range(40):
            log.append(action(thread * 1000 + n, "append"))

    def steps(thread: int) -> None:
        for n in range(thread * 100, thread * 100 + 20):
            step(log, n)

    threads = [threading.Thread(target=appends, args=(t,)) for t in range(3)]
    threads += [threading.Thread(target=steps, args=(t,)) for t in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    kept = {row[0] for row in rows(engine, "SELECT id FROM step_change")}
    assert kept == {n for t in (1, 2) for n in range(t * 100, t * 100 + 20) if n % 5}
    entries = rows(engine, 'SELECT "index", canonical, leaf_hash FROM audit_entry ORDER BY 1')
    assert [row[0] for row in entries] == list(range(3 * 40 + len(kept)))
    logged = set()
    for index, data, leaf in entries:  # each leaf covers its own entry and index
        entry = json.loads(bytes(data))["entry"]
        assert bytes(data) == leaf_data(index, canonical(entry))
        assert bytes(leaf) == hashlib.sha256(LEAF_PREFIX + bytes(data)).digest()
        if entry["operation"]["kind"] == "step":
            logged.add(entry["operation"]["n"])
    assert logged == kept  # every change in force has its entry, and no other
    assert Ledger(engine).sync() == len(entries)
    assert commits


def test_a_failing_entry_leaves_no_change_and_no_gap(engine):
    commits = []
    log = AuditLog(engine, on_commit=lambda: commits.append(1))
    log.append(action(0, "append"))
    dialect = engine.dialect.name
    with engine.begin() as connection:
        for statement in FAULT[dialect]:
            connection.execute(text(statement))
    before = len(commits)
    with pytest.raises(EntryNotWritten):
        step(log, 1)
    assert rows(engine, "SELECT id FROM step_change") == []
    assert len(commits) == before  # nothing woken for an entry that is not there
    with engine.begin() as connection:
        for statement in CLEARED[dialect]:
            connection.execute(text(statement))
    step(log, 1)
    log.append(action(2, "append"))
    assert [row[0] for row in rows(engine, "SELECT id FROM step_change")] == [1]
    indexes = rows(engine, 'SELECT "index" FROM audit_entry ORDER BY 1')
    assert [row[0] for row in indexes] == [0, 1, 2]
    assert Ledger(engine).sync() == 3
