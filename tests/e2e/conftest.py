"""End-to-end harness: the real ``bgproc`` command, real workers and beats, Redis and SQL.

Each test gets a :class:`Stack`: its own Redis key prefix and its own database (a SQLite
file, or a fresh PostgreSQL database), the ``bgproc`` CLI run as a subprocess with that
environment, and helpers to start ``bgproc worker`` / ``beat`` / ``up`` in their own
process groups. At teardown every process is stopped (SIGTERM, then SIGKILL of its whole
group after a deadline) and every Redis key of the prefix is deleted.

Nothing here sleeps and hopes: :func:`wait_until` polls for the awaited effect with a
deadline. Runs are read straight from the database with a plain engine (no write lock),
so polling never slows the workers down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from bgproc.statuses import RequestStatus, RunStatus
from bgproc.store.db import make_engine, normalise_url
from bgproc.store.models import ProcessRequest, ProcessRun
from bgproc.store.schema import upgrade
from tests.conftest import PgServer
from tests.e2e.services import PrivatePostgres, PrivateRedis, have_postgres_binaries
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/0"
ZONE = "Europe/Madrid"
CLI_TIMEOUT_S = 60
STOP_DEADLINE_S = 15  # SIGTERM, then SIGKILL of the whole process group
READY_TIMEOUT_S = 30  # a worker or beat is up within this long on a loaded 2-core machine
# The console script may not be installed: run the entry point exactly as it would.
BGPROC = [sys.executable, "-c",
          "import sys; from cli.main import run; sys.argv[0] = 'bgproc'; run()"]
# Celery options of every test worker: no cluster chatter (mingle/gossip), which only
# slows start-up and has nothing to do with scheduling.
WORKER_OPTIONS = ("--without-mingle", "--without-gossip")

@dataclass
class Result:
    """One finished ``bgproc`` command."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Proc:
    """A long-running ``bgproc`` process (worker, beat, up) in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_log(self, needle: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the log shows ``needle``; fail at once if the process died."""

        def seen() -> bool:
            if needle in self.text():
                return True
            assert self.alive(), f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}"
            return False

        wait_until(seen, timeout_s, 0.1, f"{self.name} to log {needle!r}")

    def terminate(self) -> None:
        """SIGTERM to the main process only: Celery's warm shutdown stops its pool itself."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def kill9(self) -> None:
        """SIGKILL the whole group at once: a crash, nothing is cleaned up."""
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_DEADLINE_S)

    def reap(self, deadline: float) -> None:
        """Wait for the exit until ``deadline`` (monotonic), then SIGKILL the group."""
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        # pool children, or everything if the main process did not exit in time
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_DEADLINE_S)

    def stop(self) -> None:
        self.terminate()
        self.reap(time.monotonic() + STOP_DEADLINE_S)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class Stack:
    """One installation under test: prefix, database, CLI and the processes it started."""

    def __init__(self, tmp_path: Path, db_url: str, broker_url: str = BROKER) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.prefix = f"e2e-{uuid.uuid4().hex[:10]}:"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BGPROC_")}
        pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self.env = {
            **inherited,
            "BGPROC_KEY_PREFIX": self.prefix,
            "BGPROC_DATABASE_URL": db_url,
            "BGPROC_BROKER_URL": broker_url,
            "BGPROC_TIMEZONE": ZONE,
            "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1",
        }
        self.redis = redis.Redis.from_url(broker_url, decode_responses=True)
        self.procs: list[Proc] = []
        self._reader: Engine = create_engine(normalise_url(db_url), pool_pre_ping=True)

    def use_database(self, url: str | None) -> None:
        """Point the stack at another database (``None``: back to its own)."""
        self._reader.dispose()
        self.env["BGPROC_DATABASE_URL"] = url or self.db_url
        self._reader = create_engine(normalise_url(url or self.db_url), pool_pre_ping=True)

    # -- the command line ----------------------------------------------------------

    def cli(
        self, *args: str, check: bool = True, timeout_s: float = CLI_TIMEOUT_S, stdin: str = ""
    ) -> Result:
        """Run ``bgproc ARGS`` to its end, ``stdin`` its input; ``check`` asserts exit code 0."""
        done = subprocess.run(
            [*BGPROC, *args], cwd=self.tmp_path, env=self.env, capture_output=True,
            text=True, timeout=timeout_s, check=False, input=stdin,
        )
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        if check:
            assert result.code == 0, f"bgproc {' '.join(args)} exited {result.code}:\n{result.err}"
        return result

    def create(self, *args: str) -> int:
        """``bgproc request create ARGS``: the new request's id."""
        out = self.cli("request", "create", *args).out.strip()
        assert out.isdigit(), out
        return int(out)

    def create_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        """``bgproc request create ARGS --json``: the id, and the timing as stored."""
        created = self.cli("request", "create", *args, "--json").json()
        return created["id"], created["timing"]

    # -- processes -----------------------------------------------------------------

    def spawn(
        self, name: str, *args: str, via: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> Proc:
        """``bgproc ARGS`` in the background; ``via`` prefixes it (``ip netns exec NS``) and
        ``env`` overrides the stack's settings (the addresses as seen from that host)."""
        log = self.tmp_path / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [*via, *BGPROC, *args], cwd=self.tmp_path, env={**self.env, **(env or {})},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str = "w1", concurrency: int = 2, ready: bool = True) -> Proc:
        """``bgproc worker`` (prefork), waited for until it consumes."""
        proc = self.spawn(name, "worker", "--concurrency", str(concurrency), "-n", f"{name}@%h",
                          *WORKER_OPTIONS)
        if ready:
            proc.wait_log(" ready.")
        return proc

    def beat(self, name: str = "beat", holder: bool = True) -> Proc:
        """``bgproc beat``; with ``holder``, waited for until it holds the RedBeat lock."""
        proc = self.spawn(name, "beat")
        if holder:
            proc.wait_log("beat: Acquired lock")
        return proc

    def worker_and_beat(self, concurrency: int = 2) -> tuple[Proc, Proc]:
        """A worker and a beat, started together (start-up is most of a short test)."""
        worker = self.worker(concurrency=concurrency, ready=False)
        beat = self.beat()
        worker.wait_log(" ready.")
        return worker, beat

    def up(self, name: str = "up") -> Proc:
        """``bgproc up``: a worker with its embedded beat, waited for until both are going."""
        proc = self.spawn(name, "up", "--concurrency", "2", "-n", f"{name}@%h", *WORKER_OPTIONS)
        proc.wait_log(" ready.")
        proc.wait_log("beat: Acquired lock")
        return proc

    def stop_all(self) -> None:
        """Stop every process at once (one shared deadline), then kill what is left."""
        for proc in self.procs:
            proc.terminate()
        deadline = time.monotonic() + STOP_DEADLINE_S
        for proc in self.procs:
            proc.reap(deadline)

    # -- reading the state ---------------------------------------------------------

    def runs(self, request_id: int | None = None) -> list[ProcessRun]:
        """Runs of a request (all runs without one), oldest first, read without locking."""
        query = select(ProcessRun).order_by(ProcessRun.id)
        if request_id is not None:
            query = query.where(ProcessRun.request_id == request_id)
        with Session(self._reader, expire_on_commit=False) as session:
            rows = list(session.scalars(query))
            session.expunge_all()
        return rows

    def fired(self, request_id: int) -> list[ProcessRun]:
        """Runs that were executed (started: not queued, misfired or skipped), by due time."""
        unstarted = (RunStatus.queued, RunStatus.misfired, RunStatus.skipped)
        rows = [r for r in self.runs(request_id) if r.status not in unstarted]
        return sorted(rows, key=lambda r: r.scheduled_at)

    def status(self, request_id: int) -> RequestStatus:
        with Session(self._reader) as session:
            row = session.get(ProcessRequest, request_id)
            assert row is not None, f"request {request_id} is gone"
            return RequestStatus(row.status)

    def entry_key(self, request_id: int) -> str:
        return f"{self.prefix}redbeat:request:{request_id}"

    def has_entry(self, request_id: int) -> bool:
        """Whether the request's RedBeat entry is in Redis (hash or sorted-set member)."""
        key = self.entry_key(request_id)
        in_schedule = self.redis.zscore(f"{self.prefix}redbeat::schedule", key) is not None
        return bool(self.redis.exists(key)) or in_schedule

    def redis_keys(self) -> list[str]:
        return sorted(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))

    def delete_keys(self) -> int:
        keys = self.redis_keys()
        return self.redis.delete(*keys) if keys else 0

    def close(self) -> None:
        self.stop_all()
        self.delete_keys()
        self.redis.close()
        self._reader.dispose()


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- fixtures -------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'bgproc.db'}"
    engine = make_engine(url)
    upgrade(engine)  # migrated before any process starts: none of them races to do it
    engine.dispose()
    return url


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """An installation on a SQLite file; the test's processes are stopped and keys deleted."""
    yield from _stack(tmp_path, _sqlite_url(tmp_path), request)


@pytest.fixture
def fresh_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """An installation on a SQLite file that does not exist yet, as a new user starts."""
    yield from _stack(tmp_path, f"sqlite:///{tmp_path / 'bgproc.db'}", request)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The same, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield from _stack(tmp_path, _sqlite_url(tmp_path), request)
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield from _stack(tmp_path, url, request)
    finally:
        server.drop_database(url)


def _stack(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest, broker_url: str = BROKER
) -> Iterator[Stack]:
    built = Stack(tmp_path, db_url, broker_url)
    try:
        yield built
    finally:
        built.close()
        if request.node.stash.get(FAILED, False):  # the logs tell why: shown with the failure
            for proc in built.procs:
                print(f"----- {proc.name} (pid {proc.pid}, exit {proc.popen.returncode}) -----")
                print(proc.tail(80))


@pytest.fixture
def private_redis(stack: Stack) -> Iterator[PrivateRedis]:
    """A Redis of the test's own for the stack (broker and entries), for faults to break."""
    server = PrivateRedis()
    server.start()
    stack.env["BGPROC_BROKER_URL"] = server.url
    shared, stack.redis = stack.redis, redis.Redis.from_url(server.url, decode_responses=True)
    yield server
    stack.stop_all()
    stack.redis.close()
    stack.redis = shared  # the server is gone with its keys; the stack cleans the shared one
    server.close()


@pytest.fixture
def private_postgres(stack: Stack) -> Iterator[PrivatePostgres]:
    """A migrated PostgreSQL of the test's own, the stack's database, for faults to break."""
    if not have_postgres_binaries():
        pytest.skip("PostgreSQL server binaries missing")
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        engine = make_engine(server.url)
        upgrade(engine)
        engine.dispose()
        stack.use_database(server.url)
        yield server
    finally:
        stack.stop_all()
        stack.use_database(None)
        server.close()
