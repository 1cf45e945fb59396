"""The query layer (``domain.query``, ``domain.lookups``, ``domain.aggregates``) on a real
SQLite file and a real PostgreSQL database: every operator gives the same rows on both,
and hostile names and values stay a name and a value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Date, Float, Integer, MetaData, String, Table, create_engine, func
from sqlalchemy import select as sa_select

from conftest import DATABASES, cluster
from dataauth.domain.aggregates import statement
from dataauth.domain.database import Domain, open_domain
from dataauth.domain.language import parse
from dataauth.domain.lookups import Band, Check, Lookup, Verification
from dataauth.domain.query import Cohort, Condition, Op
from dataauth.domain.shape import Column as Typed
from dataauth.domain.shape import Table as Dataset

HOSTILE = "'; DROP TABLE x; --"
TABLE = 'we"ird; DROP TABLE x; --'
KEY, NUMBER, TEXT, DAY = "key'", 'n"', "t; --", "select"
"""Identifiers no statement could hold unquoted: quotes, a semicolon, a keyword."""

ROWS = [
    {KEY: "a", NUMBER: 1, TEXT: "red", DAY: dt.date(2020, 1, 1), "x": 0.5},
    {KEY: "b", NUMBER: 5, TEXT: "green", DAY: dt.date(2021, 6, 1), "x": 2.5},
    {KEY: "c", NUMBER: 7, TEXT: "blue", DAY: dt.date(2022, 3, 9), "x": None},
    {KEY: "d", NUMBER: None, TEXT: HOSTILE + "x", DAY: None, "x": 9.0},
    {KEY: HOSTILE, NUMBER: 10, TEXT: "red", DAY: dt.date(2023, 12, 31), "x": -4.0},
]


def table() -> tuple[MetaData, Table]:
    metadata = MetaData()
    made = Table(
        TABLE,
        metadata,
        Column(KEY, String, primary_key=True),
        Column(NUMBER, Integer),
        Column(TEXT, String),
        Column(DAY, Date),
        Column("x", Float),
    )
    return metadata, made


@pytest.fixture(scope="module", params=DATABASES)
def domain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('domain')) / 'domain.sqlite'}"
    else:
        url = cluster().new_database()
    metadata, made = table()
    writer = create_engine(url)
    metadata.create_all(writer)
    with writer.begin() as connection:
        connection.execute(made.insert(), ROWS)
    engine = open_domain(url)
    yield Domain(engine), writer, made
    engine.dispose()
    writer.dispose()


def keys(rows) -> list[str]:
    return sorted(row[0] for row in rows)


def where(domain, *conditions: Condition) -> list[str]:
    return keys(Cohort(TABLE, tuple(conditions)).rows(domain[0], [KEY]))


CASES = [
    (Condition(NUMBER, Op.EQ, 5), ["b"]),
    (Condition(NUMBER, Op.NE, 5), ["a", "c", HOSTILE]),
    (Condition(NUMBER, Op.LT, 5), ["a"]),
    (Condition(NUMBER, Op.LE, 5), ["a", "b"]),
    (Condition(NUMBER, Op.GT, 5), ["c", HOSTILE]),
    (Condition(NUMBER, Op.GE, 5), ["b", "c", HOSTILE]),
    (Condition(NUMBER, Op.BETWEEN, (2, 7)), ["b", "c"]),
    (Condition(NUMBER, Op.IN, (1, 7, 99)), ["a", "c"]),
    (Condition(NUMBER, Op.EXISTS), ["a", "b", "c", HOSTILE]),
    (Condition("x", Op.LT, 1.0), ["a", HOSTILE]),
    (Condition(TEXT, Op.EQ, "red"), ["a", HOSTILE]),
    (Condition(TEXT, Op.IN, ("blue", "green")), ["b", "c"]),
    (Condition(DAY, Op.GE, "2021-06-01"), ["b", "c", HOSTILE]),
    (Condition(DAY, Op.BETWEEN, ("2020-01-01", "2021-12-31")), ["a", "b"]),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=lambda c: getattr(c, "op", ""))
def test_each_op_gives_the_rows_it_names(domain, condition, expected) -> None:
    """The same rows on SQLite and PostgreSQL: each case's rows are fixed in advance."""
    assert where(domain, condition) == sorted(expected)


def test_conditions_are_a_conjunction(domain) -> None:
    both = (Condition(TEXT, Op.EQ, "red"), Condition(NUMBER, Op.GT, 1))
    assert where(domain, *both) == [HOSTILE]
    assert where(domain) == sorted(row[KEY] for row in ROWS)


def test_hostile_values_match_nothing_and_break_nothing(domain) -> None:
    _, writer, made = domain
    for op in (Op.EQ, Op.LT, Op.GE):
        where(domain, Condition(TEXT, op, HOSTILE))  # runs; what it orders is text
    assert where(domain, Condition(TEXT, Op.EQ, HOSTILE)) == []
    assert where(domain, Condition(TEXT, Op.IN, (HOSTILE, "' OR '1'='1"))) == []
    assert where(domain, Condition(KEY, Op.EQ, HOSTILE)) == [HOSTILE]  # a value, as stored
    with writer.connect() as connection:
        assert connection.execute(sa_select(func.count()).select_from(made)).scalar() == 5


def test_a_cohort_is_read_only_where_its_columns_are_present(domain) -> None:
    rows = Cohort(TABLE).rows(domain[0], [KEY, "x"])
    assert sorted(r[0] for r in rows) == sorted(["a", "b", "d", HOSTILE])
    assert len(Cohort(TABLE).rows(domain[0], [KEY], limit=2)) == 2


def test_totals_count_and_clamp(domain) -> None:
    cohort = Cohort(TABLE, (Condition(TEXT, Op.NE, "blue"),))
    count, total, numbers = cohort.totals(domain[0], [("x", (0.0, 3.0)), (NUMBER, (0.0, 6.0))])
    assert count == 4
    assert float(total) == pytest.approx(0.5 + 2.5 + 3.0 + 0.0)  # 9 -> 3, -4 -> 0
    assert float(numbers) == pytest.approx(1 + 5 + 6)  # NULL adds nothing
    empty = Cohort(TABLE, (Condition(TEXT, Op.EQ, HOSTILE),)).totals(domain[0], [("x", (0, 1))])
    assert empty[0] == 0 and empty[1] is None


def test_a_lookup_keeps_each_subject_in_its_place(domain) -> None:
    lookup = Lookup(TABLE, KEY, (NUMBER, TEXT))
    asked = ["c", "nobody", HOSTILE, "a", "c", "' OR 1=1 --"]
    rows = sorted(lookup.rows(domain[0], asked, chunk=2))
    assert rows == [(0, 7, "blue"), (2, 10, "red"), (3, 1, "red"), (4, 7, "blue")]


def test_a_verification_batch(domain) -> None:
    """Per-subject operands in their slots, the product's own constants beside them (a
    fixed comparison first, where a subject's key once took its parameter's name), and
    the band from cut points: found, passed, band per subject in order."""
    checks = (
        Check(TEXT, Op.NE, ("green",)),
        Check(NUMBER, Op.GE),
        Check(TEXT, Op.IN),
        Check(DAY, Op.EXISTS),
    )
    query = Verification(TABLE, KEY, checks, Band(NUMBER, (5.0, 8.0)), in_slots=3)
    assert query.slots() == ("c1_0", "c2_0", "c2_1", "c2_2")
    asked = ["a", "b", HOSTILE, "nobody", "c"]
    operands = [
        [1, "red", None, None],
        [1, "green", None, None],
        [10, "red", "blue", None],
        [0, "red", None, None],
        [8, HOSTILE, "blue", None],
    ]
    rows = sorted(tuple(row) for row in query.answers(domain[0], asked, operands))
    assert rows == [(0, 1, 1, 0), (1, 1, 0, 1), (2, 1, 1, 2), (3, 0, 0, None), (4, 1, 0, 1)]
    again = query.answers(domain[0], asked[:1], operands[:1])  # another size, compiled anew
    assert [tuple(row) for row in again] == [(0, 1, 1, 0)]


def test_a_verification_batch_binds_by_position_as_by_name(domain) -> None:
    """On a driver that binds by position (SQLite), a batch's values go in as one flat
    list in row order; the answers are the ones the same statement gives bound by name,
    and a subject with the wrong number of operands is refused, not shifted."""
    checks = (Check(TEXT, Op.NE, ("green",)), Check(NUMBER, Op.BETWEEN), Check(TEXT, Op.IN))
    query = Verification(TABLE, KEY, checks, Band(NUMBER, (5.0,)), in_slots=2)
    asked = ["a", "b", HOSTILE, "nobody", "c", "a"]
    operands = [[0, 9, "red", None], [2, 3, "green", "red"], [10, 20, "blue", None]] * 2
    statement, _, tail = query._statement(domain[0], len(asked))
    assert (tail is not None) == (statement.order is not None)
    flat = sorted(tuple(row) for row in query.answers(domain[0], asked, operands))
    named = Verification(TABLE, KEY, checks, Band(NUMBER, (5.0,)), in_slots=2)
    prepared, fixed, _ = named._statement(domain[0], len(asked))
    named._prepared[(domain[0], len(asked))] = (prepared, fixed, None)
    assert sorted(tuple(row) for row in named.answers(domain[0], asked, operands)) == flat
    assert flat[0] == (0, 1, 1, 0) and flat[3] == (3, 0, 0, None)
    with pytest.raises(ValueError):
        query.answers(domain[0], asked, [[0, 9, "red"], *operands[1:]])


def test_the_query_language_binds_what_the_operator_wrote(domain) -> None:
    """A literal of the SQL text reaches the database as a bound value, never as text;
    a dataset's column is named as the catalog names it, quoted by the dialect."""
    dataset = Dataset("things", TABLE, KEY, {TEXT: Typed("string"), NUMBER: Typed("integer")})
    literal = HOSTILE.replace("'", "''")
    number, text = ('"' + name.replace('"', '""') + '"' for name in (NUMBER, TEXT))
    sql = f"SELECT COUNT(*), SUM({number}) FROM things WHERE {text} = '{literal}'"
    shape = parse(sql, {"things": dataset})
    assert shape.where == Condition(("things", TEXT), Op.EQ, HOSTILE)
    built = statement(shape, [("count", None), ("sum", ("things", NUMBER))], noisy=False)
    assert HOSTILE not in str(built.compile(dialect=domain[0].engine.dialect))
    assert domain[0].execute(built) == [(0, None)]
    red = parse(f"SELECT COUNT(*) FROM things WHERE {text} IN ('red')", {"things": dataset})
    assert domain[0].execute(statement(red, [("count", None)], noisy=False)) == [(2,)]
