"""The gateway database's schema is Alembic's, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import dataauth.app  # noqa: F401  (every package's tables, for the comparison)
from conftest import DATABASES, cluster
from dataauth.store.engine import FIRST, alembic_config, gateway_engine, migrate, schema_revision


@pytest.fixture(params=DATABASES)
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    return cluster().new_database()


def differences(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    return found


def test_the_migrations_make_exactly_the_tables_the_code_declares(empty_url):
    """A table added to the code without its migration fails here."""
    engine = gateway_engine(empty_url)
    assert schema_revision(engine) is not None
    assert differences(empty_url) == []


def test_down_to_nothing_and_up_again(empty_url):
    engine = gateway_engine(empty_url)
    head = schema_revision(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert schema_revision(engine) is None
    assert not inspect(engine).has_table("audit_entry")
    migrate(engine)
    assert schema_revision(engine) == head


def test_a_database_made_before_migrations_is_taken_over(tmp_path):
    """One made by create_all, before there were migrations, holds the first revision's
    tables and no version: it is stamped, then migrated on."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = create_engine(url)
    migrate(old, FIRST)
    with old.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine = gateway_engine(url)
    assert schema_revision(engine) is not None
    assert differences(url) == []


def test_db_commands(empty_url, tmp_path):
    def db(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dataauth.cli", "db", *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env={"DATAAUTH_DATABASE_URL": empty_url, "PATH": ""},
            timeout=60,
        )

    assert db("current").stdout.strip() == "none"
    upgraded = db("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "at revision" in upgraded.stdout
    assert db("current").stdout.strip() not in ("", "none")
    bad = db("upgrade", "no-such-revision")
    assert bad.returncode == 1 and "migration failed" in bad.stderr
