"""A command whose Redis or database does not answer fails fast: one line, exit 5, < 1 s
(from its parsing to its exit).

The real ``bgproc`` runs in a subprocess (the e2e :class:`Stack`: a SQLite file and a Redis
key prefix of the test's own), its Redis or PostgreSQL URL naming a local port nothing
listens on (connection refused), with a password that must never be printed. Worker,
beat and ``up`` keep retrying through outages; only the CLI's clients give up at once.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Result, Stack, _sqlite_url, _stack
from tests.e2e.services import free_port

PASSWORD = f"pw-{uuid.uuid4().hex}"
FAIL_FAST_S = 1.0
SCHEDULED = ("sample.echo", "--timing", "scheduled", "--frequency", "minutes", "--interval", "5")


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The CLI on a migrated SQLite file of the test's own, Redis keys under its own prefix."""
    yield from _stack(tmp_path, _sqlite_url(tmp_path), request)


def dead_redis(stack: Stack) -> str:
    """Point the stack's commands at a Redis that refuses; the URL they must print."""
    port = free_port()  # bound, then released: nothing listens on it
    stack.env["BGPROC_BROKER_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    return f"redis://:***@127.0.0.1:{port}/0"


def dead_database(stack: Stack) -> str:
    """Point the stack's commands at a PostgreSQL that refuses; the URL they must print."""
    port = free_port()
    stack.use_database(f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/x")
    return f"postgresql+psycopg://u:***@127.0.0.1:{port}/x"  # the driver bgproc uses


# The entry point as the console script runs it, timing the command itself: the interpreter's
# start-up and the imports a command makes come before any service is asked, and only
# inflate (by a second or more on a loaded 2-core machine) what this test is not about.
PRELOADED = ", ".join(
    f"bgproc.{name}"
    for name in ("services.adhoc", "services.health", "services.requests", "services.sync")
)
TIMED_BGPROC = [sys.executable, "-c", (
    f"import sys, time, {PRELOADED}; from cli.main import main; started = time.monotonic(); "
    "code = main(sys.argv[2:]); open(sys.argv[1], 'w').write(str(time.monotonic() - started)); "
    "sys.exit(code)"
)]


def timed(stack: Stack, *args: str) -> tuple[Result, float]:
    """``bgproc ARGS`` and the seconds the command took from its parsing to its exit."""
    elapsed = stack.tmp_path / "elapsed"
    done = subprocess.run(
        [*TIMED_BGPROC, str(elapsed), *args], cwd=stack.tmp_path, env=stack.env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return Result(args, done.returncode, done.stdout, done.stderr), float(elapsed.read_text())


def assert_refused_fast(stack: Stack, args: tuple[str, ...], service: str, url: str) -> None:
    done, spent_s = timed(stack, *args)
    assert done.code == 5, done.err
    assert done.err.splitlines() == [done.err.strip()], done.err  # one line, nothing else
    assert done.err.startswith(f"Error: {service} is unreachable at {url}: "), done.err
    assert PASSWORD not in done.out + done.err
    assert "Traceback" not in done.err
    assert spent_s < FAIL_FAST_S, f"bgproc {' '.join(args)} took {spent_s:.2f} s"


@pytest.mark.parametrize(
    "args",
    [
        ("request", "create", *SCHEDULED),
        ("sync",),
        ("run", "sample.echo"),
        ("monitor", "workers"),
        ("monitor", "queues"),
    ],
    ids=" ".join,
)
def test_a_command_with_redis_down_fails_fast(stack: Stack, args: tuple[str, ...]) -> None:
    # Given a Redis that refuses connections
    shown = dead_redis(stack)
    # When a command that needs it runs, then it is refused in one line within a second
    assert_refused_fast(stack, args, "redis", shown)


def test_request_create_with_redis_down_writes_no_row(stack: Stack) -> None:
    # Given a Redis that refuses connections
    shown = dead_redis(stack)
    # When a scheduled request is created, it is refused
    assert_refused_fast(stack, ("request", "create", *SCHEDULED), "redis", shown)
    # Then the SQL row was rolled back with the Redis write (read without Redis)
    assert stack.cli("request", "list", "--json").json() == []


def test_request_schedule_with_redis_down_leaves_the_request_unscheduled(stack: Stack) -> None:
    # Given an unscheduled request, then a Redis that refuses connections
    request_id = stack.create(*SCHEDULED, "--no-schedule")
    unscheduled = stack.cli("request", "show", str(request_id), "--json").json()["status"]
    shown = dead_redis(stack)
    # When it is scheduled, it is refused
    assert_refused_fast(stack, ("request", "schedule", str(request_id)), "redis", shown)
    # Then the request is as it was
    after = stack.cli("request", "show", str(request_id), "--json").json()["status"]
    assert after == unscheduled


@pytest.mark.parametrize(
    "args",
    [
        ("request", "list"),
        ("monitor", "list"),
        ("run", "sample.echo"),
        ("request", "create", *SCHEDULED),
    ],
    ids=" ".join,
)
def test_a_command_with_the_database_down_fails_fast(stack: Stack, args: tuple[str, ...]) -> None:
    # Given a PostgreSQL that refuses connections (Redis is up)
    shown = dead_database(stack)
    # When a command that needs it runs, then it is refused in one line within a second
    assert_refused_fast(stack, args, "database", shown)
