"""The storage contract, proven on SQLite and PostgreSQL by the same tests."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.synchronize import Barrier
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from celery import Celery
from sqlalchemy import Engine, bindparam, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from bgproc.errors import InvalidInput, Unavailable
from bgproc.registry import Registry
from bgproc.runtime.grouprun import GroupRuns
from bgproc.statuses import Channel, RequestStatus, RunStatus
from bgproc.store.db import execute_many, make_engine, normalise_url, session_scope
from bgproc.store.models import (
    ALEMBIC_VERSION_TABLE,
    Base,
    ProcessGroup,
    ProcessGroupStep,
    ProcessRequest,
    ProcessRun,
)
from bgproc.store.runs import RunStore
from bgproc.store.schema import MIGRATIONS_DIR, ensure_schema, upgrade
from bgproc.store.stats import aggregate_query
from bgproc.store.transitions import NewRun
from tests.waiting import wait_until

WRITES_PER_PROCESS = 200
HEAD = "0013"
# PostgreSQL sessions on the test's database other than the asking one
OTHER_SESSIONS = "datname = current_database() AND pid <> pg_backend_pid()"


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
        )
        return context.get_current_revision()


def _count_runs(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(ProcessRun)) or 0


def _stored_run(engine: Engine) -> ProcessRun:
    with session_scope(engine) as session:
        run = ProcessRun(process="sample.echo")
        session.add(run)
    return run


def _new_request(**fields: object) -> ProcessRequest:
    timing = {"v": 1, "timing": "immediate", "tz": "UTC"}
    return ProcessRequest(**{"process": "sample.echo", "timing": timing, **fields})


# --- migrations ---------------------------------------------------------------------------


def test_migrations_build_the_schema_from_nothing_and_are_idempotent(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    try:
        upgrade(engine)
        upgrade(engine)

        assert _revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert {"bgproc_request", "bgproc_run", ALEMBIC_VERSION_TABLE} <= tables
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def _upgrade_to(engine: Engine, revision: str) -> None:
    """Migrate to one revision only, as an older bgproc left the database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_upgrade_from_0001_keeps_requests_runs_and_ids(blank_db_url: str) -> None:
    # Given a 0001 database with requests, runs of them, and a deleted last request
    engine = make_engine(blank_db_url)
    _upgrade_to(engine, "0001")
    stamp = "'2026-01-01 00:00:00'"
    with engine.begin() as connection:
        for name in ("a", "b", "c"):
            connection.execute(
                text(
                    "INSERT INTO bgproc_request (name, process, params, timing, timezone, "
                    f"created_at, updated_at) VALUES ('{name}', 'sample.echo', '{{}}', "
                    f"'immediate', 'UTC', {stamp}, {stamp})"
                )
            )
        connection.execute(text("DELETE FROM bgproc_request WHERE name = 'c'"))
        connection.execute(
            text(
                "INSERT INTO bgproc_run (request_id, process, params) VALUES "
                "(1, 'sample.echo', '{}'), (2, 'sample.echo', '{}'), (NULL, 'adhoc', '{}')"
            )
        )
    try:
        # When it is upgraded to head
        upgrade(engine)

        # Then the schema is the models', and nothing was lost or renumbered
        assert _revision(engine) == HEAD
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
            )
            assert compare_metadata(context, Base.metadata) == []
        with session_scope(engine) as session:
            requests = session.scalars(select(ProcessRequest).order_by(ProcessRequest.id)).all()
            assert [(r.id, r.process, r.group_id) for r in requests] == [
                (1, "sample.echo", None),
                (2, "sample.echo", None),
            ]
            runs = session.execute(select(ProcessRun.id, ProcessRun.request_id)).all()
            assert sorted(runs) == [(1, 1), (2, 2), (3, None)]
            session.add(group := ProcessGroup(name="nightly"))
            session.flush()
            session.add(later := _new_request(process=None, group_id=group.id))
        assert later.id == 4  # the deleted request's id is not reused
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_schema_is_created_on_first_use(blank_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(blank_db_url)

    assert _count_runs(engine) == 0  # session_scope -> ensure_schema -> upgrade

    assert (tmp_path / "blank.db").exists()
    assert _revision(engine) == HEAD
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_without_upgrade_is_refused_clearly(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    with pytest.raises(Unavailable, match="run `bgproc db upgrade`") as refused:
        ensure_schema(engine)
    assert refused.value.service == "database"
    assert str(refused.value).startswith("database at postgresql"), "not 'unreachable'"
    assert "no bgproc schema yet" in str(refused.value)
    assert f"need revision {HEAD}" in str(refused.value)
    assert inspect(engine).get_table_names() == []  # checking never creates anything

    upgrade(engine)
    ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {ALEMBIC_VERSION_TABLE} SET version_num = '9999'"))
    ensure_schema(engine)  # checked once per engine, not on every session
    engine.dispose()
    newer = make_engine(blank_db_url)
    with pytest.raises(Unavailable, match="newer than this bgproc"):
        ensure_schema(newer)
    newer.dispose()


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=ZoneInfo("Europe/Madrid")),
        datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        datetime(2030, 1, 1, 23, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_datetimes_round_trip_as_aware_utc(engine: Engine, moment: datetime) -> None:
    with session_scope(engine) as session:
        run = ProcessRun(process="sample.echo", started_at=moment, scheduled_at=None)
        session.add(run)
    with session_scope(engine) as session:
        loaded = session.get(ProcessRun, run.id)
        assert loaded is not None
        # Compared in UTC: Python never calls an ambiguous (fold) time equal across zones.
        assert loaded.started_at == moment.astimezone(UTC)
        assert loaded.started_at.tzinfo is UTC
        assert loaded.scheduled_at is None
        found = session.scalars(select(ProcessRun).where(ProcessRun.started_at >= moment)).all()
        assert [r.id for r in found] == [run.id]


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError) as refused, session_scope(engine) as session:
        session.add(ProcessRun(process="sample.echo", started_at=datetime(2024, 1, 1, 12)))
    assert isinstance(refused.value.orig, ValueError)
    assert "naive" in str(refused.value.orig)
    assert _count_runs(engine) == 0


def test_json_round_trips_unicode_and_nesting(engine: Engine) -> None:
    params = {
        "name": "Müller — 東京 🚀",
        "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
        "big": 2**53,
    }
    with session_scope(engine) as session:
        run = ProcessRun(process="sample.echo", params=params, result=None)
        done = ProcessRun(process="sample.echo", result=["ok", {"n": 1}])
        session.add_all([run, done])
    with session_scope(engine) as session:
        assert session.get(ProcessRun, run.id).params == params
        assert session.get(ProcessRun, done.id).result == ["ok", {"n": 1}]
        no_result = session.scalars(select(ProcessRun.id).where(ProcessRun.result.is_(None)))
        assert list(no_result) == [run.id]  # "no result" is SQL NULL, not JSON null


def test_statuses_are_plain_strings_read_back_as_enums(engine: Engine) -> None:
    with session_scope(engine) as session:
        request = _new_request(status=RequestStatus.scheduled)
        session.add(request)
        session.flush()
        session.add(ProcessRun(process="sample.echo", request_id=request.id))
    with session_scope(engine) as session:
        raw = session.execute(text("SELECT status, channel FROM bgproc_run")).one()
        assert tuple(raw) == ("queued", "scheduler")
        run = session.scalars(select(ProcessRun)).one()
        assert (run.status, run.channel, run.attempt) == (RunStatus.queued, Channel.scheduler, 1)
        assert session.get(ProcessRequest, request.id).status is RequestStatus.scheduled
    with pytest.raises(StatementError), session_scope(engine) as session:
        session.add(ProcessRun(process="sample.echo", status="finished"))


def test_the_runners_bare_read_gives_what_the_orm_stored(engine: Engine) -> None:
    """``RunStore.ticket`` reads past SQLAlchemy's types (``read_row``): JSON, booleans and
    statuses must still come back as stored, on both backends."""
    params = {"name": "Müller — 東京 🚀", "nested": {"list": [1, 2.5, None, True]}, "n": 2**53}
    with session_scope(engine) as session:
        request = _new_request(status=RequestStatus.scheduled, prevent_concurrent=True)
        session.add(request)
        session.flush()
        run = ProcessRun(
            process="sample.echo", params=params, request_id=request.id, attempt=2,
            status=RunStatus.lost, channel=Channel.direct,
        )  # fmt: skip
        session.add(run)
    ticket = RunStore(engine).ticket(run.id)
    assert ticket is not None
    assert (ticket.run_id, ticket.status, ticket.attempt, ticket.process, ticket.params) == (
        run.id, RunStatus.lost, 2, "sample.echo", params
    )  # fmt: skip
    assert (ticket.channel, ticket.request_id, ticket.request_status) == (
        Channel.direct, request.id, RequestStatus.scheduled
    )  # fmt: skip
    assert ticket.request_prevent_concurrent is True and ticket.group_run_id is None
    assert RunStore(engine).ticket(run.id + 1) is None


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_that_died_under_the_bare_read_is_unavailable_once(
    engine: Engine, pg_store: Engine
) -> None:
    # Given a run, read once: the reading thread holds its connection
    run = _stored_run(engine)
    runs = RunStore(engine)
    assert runs.ticket(run.id) is not None
    # When the server ends every other session of this database (a restart, as seen by it)
    with pg_store.connect() as admin:
        admin.execute(
            text(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {OTHER_SESSIONS}"
            )
        )
    # Then the next read is one Unavailable line, and the one after reconnects
    with pytest.raises(Unavailable, match="database is unreachable"):
        runs.ticket(run.id)
    assert runs.ticket(run.id) is not None


def test_the_schema_holds_one_random_key_that_every_process_reads(
    engine: Engine, db_url: str
) -> None:
    """The key that signs what ad-hoc messages carry: made by the migration, never in Redis."""
    key = RunStore(engine).ticket_key
    assert key is not None and len(key) == 64 and int(key, 16)
    other = make_engine(db_url)
    try:
        assert RunStore(other).ticket_key == key
    finally:
        other.dispose()


def test_a_driver_level_executemany_stores_values_as_the_orm_does(engine: Engine) -> None:
    """The recorder writes through ``execute_many`` (the columns' own bind processors, at
    the driver): read back through the ORM, every type must be what was given."""
    with session_scope(engine) as session:
        runs = [ProcessRun(process="sample.echo") for _ in range(2)]
        session.add_all(runs)
    ended = datetime(2031, 3, 30, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    table = ProcessRun.__table__
    statement = (
        table.update()
        .where(table.c.id == bindparam("b_id"), table.c.status == RunStatus.queued)
        .values({key: bindparam(key) for key in ("status", "ended_at", "result", "error")})
    )
    rows = [
        {"b_id": runs[0].id, "status": RunStatus.success, "ended_at": ended,
         "result": {"name": "Müller — 東京 🚀", "list": [1, 2.5, None, True]}, "error": None},
        {"b_id": runs[1].id, "status": RunStatus.error, "ended_at": ended,
         "result": None, "error": "it's 100 % \"quoted\""},
    ]  # fmt: skip
    with engine.begin() as connection:
        execute_many(connection, statement, rows)
    with session_scope(engine) as session:
        stored = [session.get(ProcessRun, run.id) for run in runs]
        null_results = session.scalar(
            select(func.count()).select_from(ProcessRun).where(ProcessRun.result.is_(None))
        )
    for row, run in zip(rows, stored, strict=True):
        assert run is not None
        assert (run.status, run.ended_at, run.result, run.error) == (
            row["status"], ended, row["result"], row["error"]
        )  # fmt: skip
    assert null_results == 1  # no result is SQL NULL, not the JSON text 'null'


def _sessions(admin: Engine) -> int:
    """Sessions open on the test's database, other than ``admin``'s own (a session closed by
    another test may linger a moment: callers poll)."""
    with admin.connect() as connection:
        return connection.execute(
            text(
                f"SELECT count(*) FROM pg_stat_activity WHERE {OTHER_SESSIONS}"
            )
        ).scalar_one()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_held_read_connections_close_with_their_engine(
    engine: Engine, pg_store: Engine
) -> None:
    # Given reads from two threads (each holds its own connection, outside the pool)
    run = _stored_run(engine)
    engine.dispose()
    runs = RunStore(engine)
    assert runs.ticket(run.id) is not None
    other = threading.Thread(target=runs.ticket, args=(run.id,))
    other.start()
    other.join()
    wait_until(lambda: _sessions(pg_store) == 2, 10, what="two reading sessions")
    # When the engine is disposed, then both are closed
    engine.dispose()
    wait_until(lambda: _sessions(pg_store) == 0, 10, what="no session left")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_forked_child_reads_on_its_own_connection_and_leaves_its_parents(
    engine: Engine,
) -> None:
    # Given a parent that read (it holds a connection)
    run = _stored_run(engine)
    runs = RunStore(engine)
    assert runs.ticket(run.id) is not None
    # When a forked child reads, then exits
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is its exit code
        ok = runs.ticket(run.id) is not None
        engine.dispose(close=False)  # as a pool child does at start
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    # Then the child read, and the parent's held connection still works
    assert os.waitstatus_to_exitcode(status) == 0
    assert runs.ticket(run.id) is not None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_fork_waits_for_another_threads_sqlite_write_and_the_child_writes(
    engine: Engine,
) -> None:
    # Given another thread inside a write transaction while this one forks (Celery's pool
    # replacing a child while housekeeping writes)
    _stored_run(engine)
    inside = threading.Event()

    def write() -> None:
        with session_scope(engine) as session:
            session.add(ProcessRun(process="thread"))
            session.flush()
            inside.set()
            time.sleep(0.2)  # the transaction stays open while the fork is asked for

    thread = threading.Thread(target=write)
    thread.start()
    assert inside.wait(10)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is its exit code
        inherited = engine.pool.checkedin()
        try:
            _stored_run(engine)  # inheriting the write lock, this failed: "database is locked"
            with session_scope(engine) as session:
                seen = session.scalar(select(func.count()).where(ProcessRun.process == "thread"))
        except Exception:
            os._exit(3)
        os._exit(0 if inherited == 0 and seen == 1 else 2)
    thread.join()
    _, status = os.waitpid(child, 0)
    # Then the fork came after the write's commit, with no SQLite connection in the child,
    # and the child wrote
    assert os.waitstatus_to_exitcode(status) == 0
    assert _count_runs(engine) == 3


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_fork_from_inside_sqlite_work_goes_ahead(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(ProcessRun(process="parent"))
        session.flush()
        child = os.fork()
        if child == 0:  # pragma: no cover
            os._exit(0)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _count_runs(engine) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_housekeepings_group_repair_reads_without_the_write_lock(engine: Engine) -> None:
    # Given another process inside a write transaction (every worker repairs every round)
    _stored_run(engine)
    writer = sqlite3.connect(str(engine.url.database), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        # Then the repair that finds nothing to do needs no lock (it waited, then failed)
        assert GroupRuns(engine, Registry(), Celery()).repair(datetime.now(UTC)) == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# --- constraints and indexes ---------------------------------------------------------------


def test_deleting_a_request_keeps_its_runs(engine: Engine) -> None:
    with session_scope(engine) as session:
        request = _new_request()
        session.add(request)
        session.flush()
        run = ProcessRun(process="sample.echo", request_id=request.id)
        session.add(run)
    with session_scope(engine) as session:
        session.execute(ProcessRequest.__table__.delete())
    with session_scope(engine) as session:
        kept = session.get(ProcessRun, run.id)
        assert kept is not None
        assert kept.request_id is None


def test_deleting_a_group_run_deletes_its_children(engine: Engine) -> None:
    with session_scope(engine) as session:
        group = ProcessRun(process="group.nightly")
        session.add(group)
        session.flush()
        session.add_all([ProcessRun(process="a", group_run_id=group.id) for _ in range(2)])
    with session_scope(engine) as session:
        session.execute(ProcessRun.__table__.delete().where(ProcessRun.id == group.id))
    assert _count_runs(engine) == 0


@pytest.mark.parametrize(
    ("process", "with_group"), [(None, False), ("sample.echo", True)], ids=["neither", "both"]
)
def test_a_request_names_a_process_or_a_group(
    engine: Engine, process: str | None, with_group: bool
) -> None:
    with session_scope(engine) as session:
        group = ProcessGroup(name="nightly")
        session.add(group)
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_new_request(process=process, group_id=group.id if with_group else None))
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(ProcessRequest)) == 0


def test_steps_go_with_their_group_and_a_group_in_use_stays(engine: Engine) -> None:
    with session_scope(engine) as session:
        kept = ProcessGroup(name="kept", steps=[ProcessGroupStep(position=1, process="a")])
        gone = ProcessGroup(
            name="gone",
            steps=[ProcessGroupStep(position=p, process="a", params={"p": p}) for p in (1, 2)],
        )
        session.add_all([kept, gone])
        session.flush()
        session.add(_new_request(process=None, group_id=kept.id))
    with session_scope(engine) as session:
        session.execute(ProcessGroup.__table__.delete().where(ProcessGroup.id == gone.id))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.execute(ProcessGroup.__table__.delete().where(ProcessGroup.id == kept.id))
    with session_scope(engine) as session:
        steps = session.execute(select(ProcessGroupStep.group_id, ProcessGroupStep.params)).all()
        assert [tuple(step) for step in steps] == [(kept.id, {})]


def test_group_names_are_unique(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add_all([ProcessGroup(name="nightly") for _ in range(2)])


def test_task_ids_are_unique(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add_all([ProcessRun(process="a", task_id="t-1") for _ in range(2)])
    assert _count_runs(engine) == 0


def test_ids_are_never_reused(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = ProcessRun(process="a")
        session.add(first)
    with session_scope(engine) as session:
        session.execute(ProcessRun.__table__.delete())
    with session_scope(engine) as session:
        second = ProcessRun(process="a")
        session.add(second)
    assert second.id > first.id


def test_the_monitor_queries_have_their_indexes(engine: Engine) -> None:
    inspector = inspect(engine)

    def indexed(table: str) -> set[tuple[str, ...]]:
        return {tuple(index["column_names"]) for index in inspector.get_indexes(table)}

    assert indexed("bgproc_run") >= {
        ("process", "started_at"),
        ("status", "started_at"),
        ("request_id", "started_at"),
        ("started_at",),
        ("group_run_id",),
    }
    assert indexed("bgproc_request") >= {("status",), ("process",), ("group_id",)}


def test_stats_reads_its_index_not_the_table(engine: Engine) -> None:
    query = aggregate_query(engine.dialect.name)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        explain = connection.exec_driver_sql
        if engine.dialect.name == "sqlite":
            plan = " ".join(row[-1] for row in explain(f"EXPLAIN QUERY PLAN {sql}"))
            assert "COVERING INDEX ix_bgproc_run_process_status_duration_ms" in plan
        else:
            explain("SET enable_seqscan = off")  # an empty table: any plan would do
            plan = " ".join(row[0] for row in explain(f"EXPLAIN {sql}"))
            assert "Index Only Scan using ix_bgproc_run_process_status_duration_ms" in plan


def test_session_scope_rolls_back_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(ProcessRun(process="a"))
        session.flush()
        raise RuntimeError("boom")
    assert _count_runs(engine) == 0


# --- SQLite specifics ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_uses_wal_busy_timeout_and_foreign_keys(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar() == 5000
        assert pragma("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


# --- several processes ---------------------------------------------------------------------


def _in_processes(target: Callable[..., None], url: str, count: int = 2) -> list[int | None]:
    """Exit codes of ``count`` fresh processes running ``target(url, n, start)`` together."""
    spawn = multiprocessing.get_context("spawn")  # clean processes, as separate commands are
    start = spawn.Barrier(count)
    processes = [spawn.Process(target=target, args=(url, n, start)) for n in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    return [process.exitcode for process in processes]  # a failure's traceback is in stderr


def _upgrade(url: str, _n: int, start: Barrier) -> None:
    engine = make_engine(url)
    start.wait(timeout=30)
    upgrade(engine)
    engine.dispose()


def _insert_runs(url: str, n: int, start: Barrier) -> None:
    """One writer: many small transactions that read then write, as workers and beat do."""
    engine = make_engine(url)
    ensure_schema(engine)
    start.wait(timeout=30)
    for i in range(WRITES_PER_PROCESS):
        with session_scope(engine) as session:
            request = session.scalar(select(ProcessRequest.id).limit(1))
            session.add(ProcessRun(process=f"writer-{n}", request_id=request, task_id=f"{n}-{i}"))
    engine.dispose()


def test_concurrent_upgrades_do_not_collide(blank_db_url: str) -> None:
    assert _in_processes(_upgrade, blank_db_url) == [0, 0]

    engine = make_engine(blank_db_url)
    assert _revision(engine) == HEAD
    engine.dispose()


def test_two_processes_write_at_once_without_locking_errors(db_url: str) -> None:
    assert _in_processes(_insert_runs, db_url) == [0, 0]

    engine = make_engine(db_url)
    assert _count_runs(engine) == 2 * WRITES_PER_PROCESS
    engine.dispose()


def test_a_forked_child_opens_its_own_connections(engine: Engine) -> None:
    with engine.connect() as connection:
        parents = connection.connection.dbapi_connection  # back in the pool after this block

    child = multiprocessing.get_context("fork").Process(target=_insert_one, args=(engine, parents))
    child.start()
    child.join(timeout=30)

    assert child.exitcode == 0
    assert _count_runs(engine) == 1  # and the parent's own connection still works


def _insert_one(engine: Engine, parents: object) -> None:
    """In a forked child (Celery prefork): the inherited engine must not hand out ``parents``."""
    with session_scope(engine) as session:
        assert session.connection().connection.dbapi_connection is not parents
        session.add(ProcessRun(process="child"))


# --- URLs and failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///bgproc.db", "sqlite:///bgproc.db"),
    ],
)
def test_postgresql_urls_are_pointed_at_psycopg(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_an_unreachable_server_is_unavailable_without_the_password() -> None:
    engine = make_engine("postgresql://u:secret@127.0.0.1:1/x")

    with pytest.raises(Unavailable) as refused:
        ensure_schema(engine)

    message = str(refused.value)
    assert refused.value.service == "database"
    assert "secret" not in message
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url", ["mysql://u:secret@h/x", "postgresql://u:secret@h:port/x", "u:secret@h/x"]
)
def test_a_bad_url_is_invalid_input_without_the_password(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        make_engine(url)
    assert refused.value.field == "BGPROC_DATABASE_URL"
    assert "secret" not in str(refused.value)


def _queued_with_deadline(runs: RunStore, start_by: datetime, task_id: str) -> int:
    return runs.record(NewRun(process="sample.echo", params={}, status=RunStatus.queued,
                              channel=Channel.direct, scheduled_at=start_by, queued_at=start_by,
                              task_id=task_id, start_by=start_by))  # fmt: skip


def test_a_start_and_the_expiry_of_a_run_with_a_deadline_have_one_winner(engine: Engine) -> None:
    # Given a run whose deadline has passed, one still in time, and one with none
    runs = RunStore(engine)
    now = datetime.now(UTC)
    late = _queued_with_deadline(runs, now - timedelta(seconds=1), "late")
    in_time = _queued_with_deadline(runs, now + timedelta(minutes=1), "in-time")

    # When the expiry sweep and a worker's claims race, then each run has one outcome
    assert runs.expire_late(now) == [late]
    assert runs.expire_late(now) == []  # exactly once
    assert runs.claim_in_time(late, 1, 1, "w1", now) is None  # expired first: dropped
    assert runs.claim_in_time(in_time, 1, 1, "w1", now) is True
    assert runs.claim_in_time(in_time, 1, 1, "w2", now) is None  # its twin loses
    assert runs.get(late).status is RunStatus.expired and runs.get(late).started_at is None
    assert runs.get(in_time).status is RunStatus.processing
    assert runs.get(in_time).worker == "w1"

    # And a worker that takes a late run before the sweep ends it expired itself
    later = _queued_with_deadline(runs, now - timedelta(seconds=1), "later")
    assert runs.claim_in_time(later, 1, 1, "w1", now) is False
    expired = runs.get(later)
    assert expired.status is RunStatus.expired and expired.error is not None
    assert expired.error.endswith("w1 took it too late")
    assert runs.expire_late(now) == []
