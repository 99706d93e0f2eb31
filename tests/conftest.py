"""Fixtures shared by the integration and end-to-end tests: the PostgreSQL server;
and the tally of the bad-input property tests.

An unreachable PostgreSQL fails the tests that need it: CI starts it, so silence would lie.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bgproc.store.db import normalise_url
from tests.bad_values import TALLY

PG_ADMIN_URL = os.environ.get(
    "BGPROC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many bad inputs the property tests tried, and how many of them were refused."""
    if not TALLY:
        return
    tried = sum(TALLY.values())
    refused = sum(count for key, count in TALLY.items() if key.endswith("refused"))
    terminalreporter.write_sep("-", f"bad inputs tried: {tried} ({refused} refused)")
    for key, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{key}: {count}")
