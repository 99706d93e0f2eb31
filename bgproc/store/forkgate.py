"""Work on an engine that no fork cuts: the fork gate, and :func:`in_use`, its one door.

Celery's prefork pool forks the worker; a connection shared by two processes corrupts
both. Every piece of work on an engine goes through :func:`in_use`, which also turns the
engine's connection failures into one ``Unavailable`` line, never a password.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from bgproc.errors import Unavailable
from bgproc.settings import SQLITE_BUSY_TIMEOUT_MS, redact_url

FORK_WAIT_S = 2 * SQLITE_BUSY_TIMEOUT_MS / 1000  # a fork waits this long for SQLite work to end
READ_ONLY = "bgproc_read_only"  # execution option: a SQLite transaction that only reads

logger = logging.getLogger("bgproc.db")


def guard_against_fork(engine: Engine) -> None:
    """A forked child (Celery prefork) never reuses its parent's pooled connections.

    Sharing one socket or SQLite handle between two processes corrupts both sides.
    """

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(_dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise DisconnectionError("connection was opened by the parent process")


class ForkGate:
    """No SQLite connection crosses a fork (Celery's prefork pool forks the worker).

    SQLite keeps its lock bookkeeping in the process: a child that inherits a connection
    caught in another thread's write transaction takes that write lock for one held by
    itself, for ever, and each write it tries fails with "database is locked" (CI: a pool
    child forked while housekeeping wrote). So a fork waits until the other threads' SQLite
    work ends, holds new work back while it forks, and first closes every SQLite connection:
    the child starts with none. Work costs two dict writes: forks are rare, work is not.
    """

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self._reset()
        os.register_at_fork(
            before=self._before_fork, after_in_parent=self._after_fork, after_in_child=self._reset
        )

    def _reset(self) -> None:
        self._working: dict[int, int] = {}  # thread → nesting of its SQLite work
        self._no_fork = threading.Event()
        self._no_fork.set()
        self._forks = 0  # forks under way, changed under _fork_lock
        self._fork_lock = threading.Lock()

    def add(self, engine: Engine) -> None:
        self._engines.add(engine)

    def work(self, engine: Engine) -> AbstractContextManager[Any]:
        """SQLite work on ``engine`` (anything that holds a connection); nests freely."""
        return self if engine in self._engines else nullcontext()

    def __enter__(self) -> None:
        thread = threading.get_ident()
        depth = self._working.get(thread, 0)
        self._working[thread] = depth + 1
        # Registered first, then looked: a fork either sees this work or is seen by it
        while not depth and not self._no_fork.is_set():
            del self._working[thread]
            self._no_fork.wait()
            self._working[thread] = 1

    def __exit__(self, *_: object) -> None:
        thread = threading.get_ident()
        depth = self._working.get(thread, 0) - 1
        if depth > 0:
            self._working[thread] = depth
        else:
            self._working.pop(thread, None)  # gone already: this thread forked inside work

    def _before_fork(self) -> None:
        with self._fork_lock:
            self._forks += 1
            self._no_fork.clear()
        forking = threading.get_ident()
        deadline = time.monotonic() + FORK_WAIT_S
        while any(thread != forking for thread in self._working.copy()):
            if time.monotonic() > deadline:
                logger.warning("forking while SQLite work goes on in another thread")
                break
            time.sleep(0.001)
        for engine in list(self._engines):
            engine.dispose()  # its idle connections, and the threads' held read connections

    def _after_fork(self) -> None:
        with self._fork_lock:
            self._forks -= 1
            if not self._forks:
                self._no_fork.set()


FORK_GATE = ForkGate()


@contextmanager
def in_use(engine: Engine) -> Iterator[None]:
    """Work on ``engine``: never cut by a fork (SQLite, :class:`ForkGate`), and its
    connection-level failures become one ``Unavailable`` line, never a password."""
    with FORK_GATE.work(engine):
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            where = redacted(engine)
            raise Unavailable("database", _reason(exc, engine.url), where) from exc


def _reason(exc: OperationalError | InterfaceError, url: URL) -> str:
    """The driver's first line of complaint, scrubbed of the password just in case."""
    lines = [line.strip() for line in str(exc.orig or exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc.orig or exc).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def redacted(engine: Engine) -> str:
    """The database's URL as messages name it: password redacted."""
    return redact_url(engine.url.render_as_string(hide_password=False))
