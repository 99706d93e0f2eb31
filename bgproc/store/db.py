"""Engines and sessions for SQLite and PostgreSQL.

SQLite is the embedded default, shared by the CLI, beat and workers as separate
processes on one file; PostgreSQL serves several machines. Every session checks the
schema first (:mod:`bgproc.store.schema`) and works through the fork gate
(:mod:`bgproc.store.forkgate`), whose connection failures become ``Unavailable`` with
the password redacted.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Select, create_engine, event, select
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from bgproc.errors import InvalidInput, NotFound
from bgproc.settings import MAX_GROUP_ID, SQLITE_BUSY_TIMEOUT_MS
from bgproc.store.forkgate import FORK_GATE, READ_ONLY, guard_against_fork, in_use
from bgproc.store.schema import ensure_schema

URL_FIELD = "BGPROC_DATABASE_URL"  # how the user names the URL in messages
URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
PG_CONNECT_TIMEOUT_S = 5  # a service's connection to a silent server gives up, and is retried

R = TypeVar("R")  # a row model (ProcessGroup, ProcessCalendar)


def normalise_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, connect_timeout_s: int = PG_CONNECT_TIMEOUT_S) -> Engine:
    """An engine for ``url`` (sqlite or postgresql), tuned for several processes; no I/O yet.

    ``connect_timeout_s``: how long PostgreSQL may stay silent before a connection fails
    (the CLI's is shorter, see ``CLI_PG_CONNECT_TIMEOUT_S``)."""
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        # Neither the URL nor SQLAlchemy's message (which repeats it) is shown: a password
        # in a malformed URL cannot be found to be redacted.
        raise InvalidInput(URL_FIELD, f"not a database URL; expected {URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        # No pre-ping: it would double the round trips of the worker's one read per run.
        # A connection that died with its server fails once; SQLAlchemy then discards the
        # whole pool, the run's message is requeued and the recorder retries its writes.
        engine = create_engine(
            parsed,
            connect_args={"connect_timeout": connect_timeout_s, "application_name": "bgproc"},
        )
        guard_against_fork(engine)
        return engine
    raise InvalidInput(URL_FIELD, f"{backend} is not supported; expected {URL_FORMS}")


def _sqlite_engine(url: URL) -> Engine:
    """SQLite with WAL (readers never block the writer) and BEGIN IMMEDIATE transactions.

    A deferred transaction that reads and then writes cannot wait for another process's
    lock (SQLite fails it at once); taking the write lock at BEGIN makes every writer
    queue behind ``busy_timeout`` instead.
    """
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    guard_against_fork(engine)
    FORK_GATE.add(engine)
    return engine


def _enable_wal(cursor: Any) -> None:
    """WAL mode, once per file: switching ignores busy_timeout, so a race on a new file retries."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite it never waits for (or holds) the write lock;
    on PostgreSQL it sends no BEGIN and ROLLBACK around the read (autocommit)."""
    ensure_schema(engine)
    with in_use(engine), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            yield connection.execution_options(**{READ_ONLY: True})


def ping(engine: Engine) -> None:
    """Raise ``Unavailable`` unless the database answers a trivial query now."""
    with reading(engine) as connection:
        connection.exec_driver_sql("SELECT 1")


def read_row(engine: Engine, query: Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of a prebuilt SELECT, on this thread's held DBAPI connection.

    The runner's one read per run, made cheap: no pool checkout and return, no events,
    no result objects (a pool round costs more than the read). The values come as the
    driver gives them (JSON as text on SQLite, booleans as 0/1). One statement, so no
    transaction: SQLite reads it as one snapshot; on PostgreSQL, autocommit.
    """
    ensure_schema(engine)
    driver = _driver_statement(query, engine.dialect)
    dbapi = engine.dialect.loaded_dbapi
    with in_use(engine):
        connection = _READERS.connection(engine)
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(driver.sql, driver.parameters(params))
                return cursor.fetchone()
            finally:
                cursor.close()  # ends SQLite's read snapshot
        except (dbapi.OperationalError, dbapi.InterfaceError) as error:
            _READERS.drop(engine)  # a broken connection is closed; the next read opens anew
            raise OperationalError(driver.sql, params, error) from error


class _HeldReaders:
    """Each thread's read connection per engine, kept open for :func:`read_row`.

    Detached from the pool, so threads that hold one never starve it; closed when their
    engine is disposed (or their thread is gone and another thread opens one). A forked
    child never uses nor closes its parent's: closing would end the parent's session too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: weakref.WeakKeyDictionary[Engine, dict[int, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._inherited: list[Any] = []  # the parent's, kept from the garbage collector
        os.register_at_fork(after_in_child=self._after_fork)

    def connection(self, engine: Engine) -> Any:
        """This thread's connection to ``engine`` (a pool connection, detached)."""
        thread = threading.get_ident()
        held = self._held.get(engine)
        if held is not None and thread in held:
            return held[thread]
        pooled = engine.raw_connection()
        if engine.dialect.name == "postgresql":
            pooled.driver_connection.autocommit = True  # type: ignore[union-attr]
        pooled.detach()
        with self._lock:
            if engine not in self._held:
                self._held[engine] = {}
                event.listen(engine, "engine_disposed", self._close_all)
            held = self._held[engine]
            alive = {t.ident for t in threading.enumerate()}
            for gone in [t for t in held if t not in alive]:
                _close_quietly(held.pop(gone))
            held[thread] = pooled
        return pooled

    def drop(self, engine: Engine) -> None:
        """Close this thread's connection to ``engine``."""
        with self._lock:
            pooled = self._held.get(engine, {}).pop(threading.get_ident(), None)
        if pooled is not None:
            _close_quietly(pooled)

    def _close_all(self, engine: Engine) -> None:
        with self._lock:
            held = self._held.pop(engine, {})
        for pooled in held.values():
            _close_quietly(pooled)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for held in self._held.values():
            self._inherited.extend(held.values())
        self._held = weakref.WeakKeyDictionary()


def _close_quietly(pooled: Any) -> None:
    """Close a held connection at the driver: the pool's close would first ROLLBACK, which
    on a connection that died fails, and is logged as an error with its traceback."""
    with suppress(Exception):
        pooled.dbapi_connection.close()


_READERS = _HeldReaders()


def named_row(session: Session, model: type[R], ident: object, kind: str) -> R:
    """The row of ``model`` (a group, a calendar) named ``ident``, or with that id when it is
    all digits; else NotFound naming the ``kind``."""
    text = str(ident).strip()
    if text.isascii() and text.isdigit():
        fits = len(text) <= len(str(MAX_GROUP_ID))  # int() of 5000 digits fails
        number = int(text) if fits else 0
        row = session.get(model, number) if 0 < number <= MAX_GROUP_ID else None
    else:
        row = session.scalar(select(model).where(model.name == text))  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(kind, text)
    return row


def execute_many(connection: Connection, statement: Executable, rows: list[dict[str, Any]]) -> None:
    """``statement`` once per row, handed to the driver as one executemany.

    Its SQL and its columns' bind processors are built once: SQLAlchemy's own per-row
    parameter processing costs more than SQLite's write of the row (the run recorder's
    batches). The values go through the same processors, so they are stored as the ORM
    stores them.
    """
    driver = _driver_statement(statement, connection.dialect)
    connection.exec_driver_sql(driver.sql, [driver.parameters(row) for row in rows])


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled for one dialect: its SQL, parameter order and bind processors."""

    sql: str
    order: tuple[str, ...] | None  # positional drivers (SQLite): the parameters' order
    processors: dict[str, Callable[[Any], Any] | None]
    fixed: dict[str, Any]  # the values written into the statement (``status == 'queued'``)

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for ``values`` (a value for each bind the statement left
        open), processed as SQLAlchemy would."""
        given = {**self.fixed, **values}
        process = self.processors
        if self.order is not None:
            return tuple(_processed(process[name], given[name]) for name in self.order)
        return {name: _processed(process[name], given[name]) for name in process}


def _processed(processor: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if processor is None else processor(value)


@cache
def _driver_statement(statement: Executable, dialect: Dialect) -> _DriverStatement:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    named = compiled.bind_names.items()  # each bind as the SQL names it
    processors = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect) for bind, name in named
    }
    fixed = {name: bind.value for bind, name in named if not bind.required}
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _DriverStatement(compiled.string, order, processors, fixed)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One Core transaction: commit on success, rollback on error."""
    ensure_schema(engine)
    with in_use(engine), engine.begin() as connection:
        yield connection


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, rollback on error; rows stay readable after it."""
    ensure_schema(engine)
    with (
        in_use(engine),
        Session(engine, expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads only, on a :func:`reading` connection: a monitor query over a
    million runs never holds SQLite's write lock, which every worker and beat wait for."""
    with reading(engine) as connection, Session(connection, expire_on_commit=False) as session:
        yield session
