"""Storage fixtures: every store test runs on SQLite and on PostgreSQL alike.

PostgreSQL gets one fresh database per test session, migrated once and truncated
before each test; tests of the migrations themselves get a blank database each.
An unreachable PostgreSQL fails the tests: CI starts it, so silence would lie.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bgproc.db import ensure_schema, make_engine, normalise_url, upgrade
from bgproc.models import Base

PG_ADMIN_URL = os.environ.get(
    "BGPROC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


class PgServer:
    """Creates and drops throwaway databases through an autocommit admin connection."""

    def __init__(self, admin: Engine) -> None:
        self.admin = admin

    def create_database(self) -> str:
        """A new empty database; its URL, password included."""
        name = f"bgproc_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        """Drop it even if a failed test left connections open."""
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL server of the tests, or a clear failure saying how to get one."""
    admin = create_engine(
        normalise_url(PG_ADMIN_URL),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        unreachable = str(exc.orig or exc).splitlines()[0]
    else:
        unreachable = ""
    if unreachable:  # failed outside the except block: one clear line, no chained traceback
        admin.dispose()
        where = admin.url.render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is unreachable at {where} ({unreachable}); "
            "start it or set BGPROC_TEST_PG_URL",
            pytrace=False,
        )
    yield PgServer(admin)
    admin.dispose()


@pytest.fixture(scope="session")
def pg_store(pg_server: PgServer) -> Iterator[Engine]:
    """The session's migrated PostgreSQL store (emptied before each test by ``db_url``)."""
    url = pg_server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()
    pg_server.drop_database(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on; a test may narrow it with ``parametrize("backend", …)``."""
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated store with no rows in it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    store: Engine = request.getfixturevalue("pg_store")
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with store.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return store.url.render_as_string(hide_password=False)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty store, as the application builds one."""
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def blank_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database with nothing in it: not even the file exists on SQLite."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)
