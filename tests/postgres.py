"""The machine's PostgreSQL for the tests that run on it: started where it is installed
and down, one fresh database for each gateway.

``DATAAUTH_TEST_POSTGRES_URL`` (a role that may create databases) points at a server
of your own instead. ``DATAAUTH_TEST_REQUIRE_POSTGRES=1`` (CI sets it) makes a missing
server an error rather than a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest
from sqlalchemy import Engine, create_engine, insert, select, text

ROLE = "dataauth_test"


class Postgres:
    def __init__(self, admin_url: str) -> None:
        self.admin: Engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.databases: list[str] = []

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"dataauth_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        self.databases.append(name)
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def copy_domain(self, sqlite_file: str) -> str:
        """A new database holding the demo domain's tables and rows, copied from the
        SQLite file: the department's database as a deployment has it."""
        from dataauth.demo import domain as demo

        url = self.new_database()
        source, target = create_engine(f"sqlite:///{sqlite_file}"), create_engine(url)
        demo.metadata.create_all(target)
        with source.connect() as reading, target.begin() as writing:
            for table in demo.metadata.sorted_tables:
                rows = [dict(row._mapping) for row in reading.execute(select(table))]
                writing.execute(insert(table), rows)
        source.dispose()
        target.dispose()
        return url

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.databases:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self.admin.dispose()


def unavailable(reason: str) -> None:
    if os.environ.get("DATAAUTH_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here: {reason}")
    pytest.skip(f"PostgreSQL tests not run: {reason}")


def local_admin_url() -> str:
    """Start the machine's cluster if it is down; make the test role; its URL."""
    if shutil.which("pg_lsclusters") is None:
        unavailable("no PostgreSQL cluster on this machine (apt-get install postgresql)")
    clusters = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    fields = clusters.stdout.split()
    if len(fields) < 4:
        unavailable("pg_lsclusters lists no cluster")
    version, name, port, status = fields[:4]
    if os.geteuid() != 0:
        if status != "online":
            unavailable(f"cluster {version}/{name} is down and only root may start it")
        unavailable("set DATAAUTH_TEST_POSTGRES_URL to a role that may create databases")
    if status != "online":
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True)
    create_role = (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{ROLE}'; END IF; END $$"
    )
    # root's PATH may lack the sbin folders runuser lives in
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        unavailable("no runuser to create the test role as the postgres user")
    command = [runuser, "-u", "postgres", "--", "psql", "-p", port, "-qc", create_role]
    # test processes run side by side (pytest-xdist): two may race to create the role,
    # and the loser's statement fails though the role is there; the second try sees it
    if subprocess.run(command, capture_output=True).returncode != 0:
        subprocess.run(command, check=True, capture_output=True)
    return f"postgresql+psycopg://{ROLE}:{ROLE}@127.0.0.1:{port}/postgres"


def connect() -> Postgres:
    return Postgres(os.environ.get("DATAAUTH_TEST_POSTGRES_URL") or local_admin_url())
