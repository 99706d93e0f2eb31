"""Workers and beats refuse a PostgreSQL schema of another version at start (upgrade order).

The deployment guide says: install the new code, run ``bgproc db upgrade``, start. A
worker started before the upgrade must not come up and fail every run; it exits with one
line and code 5, and its supervisor's restarts wait for the upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PgServer
from tests.e2e.conftest import Stack, _stack

UNAVAILABLE = 5


@pytest.fixture
def unmigrated(tmp_path: Path, request: pytest.FixtureRequest, pg_server: PgServer
               ) -> Iterator[Stack]:
    """An installation whose PostgreSQL database has no schema yet."""
    url = pg_server.create_database()
    try:
        yield from _stack(tmp_path, url, request)
    finally:
        pg_server.drop_database(url)


@pytest.mark.parametrize("command", [("worker", "--without-mingle"), ("beat",), ("up",)])
def test_a_runtime_command_refuses_a_schema_that_is_not_upgraded(
    unmigrated: Stack, command: tuple[str, ...]
) -> None:
    refused = unmigrated.cli(*command, check=False, timeout_s=30)
    assert refused.code == UNAVAILABLE, refused.err
    assert refused.err.count("\n") == 1 and refused.err.startswith("Error: ")
    assert "run `bgproc db upgrade`" in refused.err
    assert unmigrated.redis_keys() == [], "it started before refusing"

    unmigrated.cli("db", "upgrade")
    unmigrated.worker()  # and once it is upgraded, a worker starts
