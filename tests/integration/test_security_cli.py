"""URLs with passwords are printed masked: ``bgproc db upgrade`` and every refusal line.

In-process through the real entry point (``cli_harness``); the private Redis servers with
a password and with TLS, and the worker and beat banners, are in tests/e2e/test_security.py.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PgServer
from tests.integration.cli_harness import Cli

PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("BGPROC_KEY_PREFIX", f"test-{uuid.uuid4().hex[:10]}:")
    monkeypatch.setenv("BGPROC_TIMEZONE", "UTC")
    return Cli(capsys)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_db_upgrade_prints_the_database_url_masked(
    cli: Cli, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.create_database()
    try:
        # The test server trusts local connections: the password is carried, never checked
        with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
        monkeypatch.setenv("BGPROC_DATABASE_URL", with_password)
        done = cli.ok("db", "upgrade")
        assert ":***@" in done.out and PASSWORD not in done.out + done.err
    finally:
        pg_server.drop_database(url)


@pytest.mark.parametrize(
    ("variable", "url", "command", "shown"),
    [
        ("BGPROC_DATABASE_URL", "postgresql+psycopg://u:{pw}@127.0.0.1:{port}/x",
         ("request", "list"), "postgresql+psycopg://u:***@127.0.0.1:"),
        ("BGPROC_BROKER_URL", "redis://:{pw}@127.0.0.1:{port}/0",
         ("monitor", "queues"), "redis://:***@127.0.0.1:"),
        ("BGPROC_BROKER_URL", "redis://user:{pw}@127.0.0.1:{port}/0",
         ("monitor", "workers"), "redis://user:***@127.0.0.1:"),
    ],
)  # fmt: skip
def test_an_unreachable_service_is_named_without_its_password(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    url: str,
    command: tuple[str, ...],
    shown: str,
) -> None:
    monkeypatch.setenv("BGPROC_DATABASE_URL", f"sqlite:///{tmp_path}/bgproc.db")
    monkeypatch.setenv(variable, url.format(pw=PASSWORD, port=closed_port()))
    if variable == "BGPROC_BROKER_URL":
        cli.ok("db", "upgrade")
    refused = cli(*command)
    assert refused.code == 5, refused.err
    assert refused.err.startswith("Error: ") and shown in refused.err
    assert PASSWORD not in refused.out + refused.err
