"""Storage fixtures: every store test runs on SQLite and on PostgreSQL alike.

``pg_server`` (the server itself) lives in ``tests/conftest.py``, shared with e2e/.

PostgreSQL gets one fresh database per test session, migrated once and truncated
before each test; tests of the migrations themselves get a blank database each.
An unreachable PostgreSQL fails the tests: CI starts it, so silence would lie.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bgproc.store.db import make_engine
from bgproc.store.models import Base, InstallationKey
from bgproc.store.schema import ensure_schema, upgrade
from tests.conftest import PgServer

BACKENDS = ("sqlite", "postgresql")


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
    kept = InstallationKey.__table__  # the schema's own, made once by its migration
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t is not kept)
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
