"""Revision 0005 on SQLite and PostgreSQL: the timing columns become one JSON document, and back.

Rows are written as the previous release wrote them (0004's columns, through the table as the
database has it), upgraded, read with the current models, downgraded and read again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, inspect, select
from sqlalchemy.exc import IntegrityError

from bgproc.services.requestview import timing_of
from bgproc.store.db import make_engine, session_scope
from bgproc.store.models import (
    ALEMBIC_VERSION_TABLE,
    SCHEMA_REVISION,
    Base,
    ProcessRequest,
    ProcessRun,
)
from bgproc.store.schema import MIGRATIONS_DIR
from bgproc.timing.plan import Timing

T = datetime(2027, 1, 1, 12, tzinfo=UTC)
STAMP = {"params": {}, "created_at": T, "updated_at": T}
OLD_DOCUMENT = {"v": 1, "timing": "immediate", "tz": "UTC"}  # what 0004 could hold too
# (0004's timing columns of a request, the document 0005 makes of them)
OLD_ROWS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"timing": "immediate", "timezone": "UTC"}, {"timing": "immediate", "tz": "UTC"}),
    (
        {"timing": "later", "timezone": "Europe/Madrid", "start_at": T},
        {"timing": "later", "start": "2027-01-01T12:00:00+00:00", "tz": "Europe/Madrid"},
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "America/New_York",
            "start_at": datetime(2027, 3, 14, 6, 30, 15, 250_000, tzinfo=UTC),
            "finish_at": datetime(2027, 3, 15, tzinfo=UTC),
            "frequency": "seconds",
            "interval": 7,
            "repetitions": 40,
        },
        {
            "timing": "scheduled",
            "start": "2027-03-14T06:30:15.250000+00:00",
            "tz": "America/New_York",
            "frequency": "seconds",
            "interval": 7,
            "repetitions": 40,
            "finish": "2027-03-15T00:00:00+00:00",
        },
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "Europe/Madrid",
            "start_at": T,
            "frequency": "daily",
            "daily_option": "weekdays",
            "at_time": "02:30:00",
        },
        {
            "timing": "scheduled",
            "start": "2027-01-01T12:00:00+00:00",
            "tz": "Europe/Madrid",
            "frequency": "daily",
            "daily_option": "weekdays",
            "at": "02:30:00",
        },
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "UTC",
            "start_at": T,
            "frequency": "weekly",
            "interval": 2,
            "at_time": "07:15:30",
            "days": "mon,thu",
        },
        {
            "timing": "scheduled",
            "start": "2027-01-01T12:00:00+00:00",
            "tz": "UTC",
            "frequency": "weekly",
            "interval": 2,
            "at": "07:15:30",
            "days": ["mon", "thu"],
        },
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "UTC",
            "start_at": T,
            "frequency": "monthly",
            "at_time": "23:59:00",
            "day": "last",
        },
        {
            "timing": "scheduled",
            "start": "2027-01-01T12:00:00+00:00",
            "tz": "UTC",
            "frequency": "monthly",
            "at": "23:59:00",
            "day": "last",
        },
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "Australia/Sydney",
            "start_at": T,
            "frequency": "monthly",
            "interval": 2,
            "at_time": "08:00:00",
            "ordinal": "second",
            "weekday": "tue",
        },
        {
            "timing": "scheduled",
            "start": "2027-01-01T12:00:00+00:00",
            "tz": "Australia/Sydney",
            "frequency": "monthly",
            "interval": 2,
            "at": "08:00:00",
            "ordinal": "second",
            "weekday": "tue",
        },
    ),
    (
        {
            "timing": "scheduled",
            "timezone": "UTC",
            "start_at": T,
            "frequency": "cron",
            "cron": "0 15 10 ? * 6#3",
        },
        {
            "timing": "scheduled",
            "start": "2027-01-01T12:00:00+00:00",
            "tz": "UTC",
            "frequency": "cron",
            "cron": "0 15 10 ? * 6#3",
        },
    ),
]


def _migrate(engine: Engine, revision: str, down: bool = False) -> None:
    """Move the schema to one revision, as that release's ``bgproc db upgrade`` left it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _requests(engine: Engine) -> Table:
    """``bgproc_request`` as the database has it now (0004's columns, or 0005's)."""
    return Table("bgproc_request", MetaData(), autoload_with=engine)


def _schema(engine: Engine) -> dict[str, Any]:
    """What a migration must give back: columns, indexes, keys and checks of the table."""
    found = inspect(engine)
    return {
        "columns": {
            c["name"]: (str(c["type"]), c["nullable"]) for c in found.get_columns("bgproc_request")
        },
        "indexes": sorted(
            (i["name"], tuple(i["column_names"])) for i in found.get_indexes("bgproc_request")
        ),
        "foreign keys": sorted(
            (k["name"], tuple(k["constrained_columns"]), k["referred_table"])
            for k in found.get_foreign_keys("bgproc_request")
        ),
        "checks": sorted(c["name"] for c in found.get_check_constraints("bgproc_request")),
    }


def _documents(engine: Engine) -> dict[int, dict[str, Any]]:
    """Each request's timing document, read by its two columns: at 0005 the models' later
    columns are not there yet."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(ProcessRequest.id, ProcessRequest.timing).order_by(ProcessRequest.id)
        )
        return {row.id: row.timing for row in rows}


@pytest.fixture
def old_database(blank_db_url: str) -> Any:
    """A database at 0004 holding a request of every timing, a group's, runs of them, and
    the trace of a deleted request (its id must not come back)."""
    engine = make_engine(blank_db_url)
    _migrate(engine, "0004")
    table = _requests(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO bgproc_group (name, stop_on_error, prevent_concurrent, created_at,"
            " updated_at) VALUES ('nightly', false, false, '2027-01-01', '2027-01-01')"
        )
        for columns, _ in OLD_ROWS:
            connection.execute(table.insert().values(process="sample.echo", **STAMP, **columns))
        connection.execute(
            table.insert().values(group_id=1, **STAMP, timing="immediate", timezone="UTC")
        )
        connection.execute(
            table.insert().values(process="gone", **STAMP, timing="immediate", timezone="UTC")
        )
        connection.exec_driver_sql("DELETE FROM bgproc_request WHERE process = 'gone'")
        connection.exec_driver_sql(
            "INSERT INTO bgproc_run (request_id, process, params) VALUES"
            " (1, 'sample.echo', '{}'), (9, 'group:nightly', '{}'), (NULL, 'adhoc', '{}')"
        )
    yield engine
    engine.dispose()


def test_0005_turns_every_timing_into_one_document_and_back(old_database: Engine) -> None:
    engine = old_database
    schema_0004 = _schema(engine)
    with engine.connect() as connection:
        rows_0004 = [dict(r) for r in connection.execute(select(_requests(engine))).mappings()]

    # When the database is upgraded to head (0005, 0006's index and 0007's columns)
    _migrate(engine, "head")

    # Then the schema is the models', each timing one document that reads back as written
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
        )
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == SCHEMA_REVISION
    expected = {i: {"v": 1, **doc} for i, (_, doc) in enumerate(OLD_ROWS, start=1)}
    expected[9] = OLD_DOCUMENT
    assert _documents(engine) == expected
    with session_scope(engine) as session:
        for row in session.scalars(select(ProcessRequest)):
            assert timing_of(row).as_dict() == row.timing
        # And the runs keep their requests, the check stays, no id comes back
        runs = session.execute(select(ProcessRun.id, ProcessRun.request_id)).all()
        assert sorted(runs) == [(1, 1), (2, 9), (3, None)]
        timing = OLD_DOCUMENT
        session.add(later := ProcessRequest(process="sample.echo", params={}, timing=timing))
    assert later.id == 11
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(ProcessRequest(process=None, group_id=None, params={}, timing=timing))

    # When the database is downgraded to 0004
    _migrate(engine, "0004", down=True)

    # Then its schema and every row it had are back as they were
    assert _schema(engine) == schema_0004
    with engine.connect() as connection:
        table = _requests(engine)
        rows = {r["id"]: dict(r) for r in connection.execute(select(table)).mappings()}
    for before in rows_0004:
        assert rows[before["id"]] == before
    # And upgrading again gives the same documents (the yearly ones now as cron)
    _migrate(engine, "0005")
    assert _documents(engine) == {**expected, 11: timing}


def _yearly(fields: dict[str, str]) -> Timing:
    start = {"timing": "scheduled", "frequency": "yearly", "start": "2027-01-01T12:00:00Z"}
    return Timing.build({**start, **fields}, now=T, default_tz="UTC")


def test_0005_downgrade_turns_a_yearly_plan_into_the_cron_that_fires_the_same(
    blank_db_url: str,
) -> None:
    # Given yearly plans, which 0004 has no columns for
    engine = make_engine(blank_db_url)
    _migrate(engine, "head")  # 0005's documents, written through the models
    yearly = {
        1: _yearly({"month": "2", "day": "29", "at": "09:00", "tz": "Europe/Madrid"}),
        2: _yearly({"month": "mar", "ordinal": "last", "weekday": "sun", "at": "02:30",
                    "interval": "2", "tz": "Europe/Madrid"}),
        3: _yearly({"month": "11", "ordinal": "fourth", "weekday": "thu", "at": "10:00:30"}),
        4: _yearly({"month": "dec", "day": "last", "at": "23:59", "tz": "Pacific/Kiritimati"}),
    }  # fmt: skip
    with session_scope(engine) as session:
        for plan in yearly.values():
            session.add(ProcessRequest(process="sample.echo", params={}, timing=plan.as_dict()))
    try:
        # When the database is downgraded
        _migrate(engine, "0004", down=True)

        # Then each is the Quartz cron plan with the same start, zone and fires
        with engine.connect() as connection:
            rows = {r["id"]: r for r in connection.execute(select(_requests(engine))).mappings()}
        assert {i: rows[i]["cron"] for i in yearly} == {
            1: "0 0 9 29 2 ?",
            2: "0 30 2 ? 3 1L 2027/2",
            3: "30 0 10 ? 11 5#4",
            4: "0 59 23 L 12 ?",
        }
        for request_id, plan in yearly.items():
            row = rows[request_id]
            start = row["start_at"]
            start = start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC)
            assert (row["timing"], row["frequency"], row["timezone"], start) == (
                "scheduled", "cron", plan.timezone, plan.start
            )  # fmt: skip
            assert [row[c] for c in ("interval", "at_time", "day", "ordinal", "weekday")] == [
                None
            ] * 5
            as_cron = Timing.build(
                {"timing": "scheduled", "frequency": "cron", "cron": row["cron"],
                 "tz": row["timezone"], "start": start},
                now=T, default_tz="UTC",
            )  # fmt: skip
            assert as_cron.upcoming(T, 12) == plan.upcoming(T, 12)
    finally:
        engine.dispose()


def test_0005_downgrade_refuses_a_timing_0004_cannot_hold_and_changes_nothing(
    blank_db_url: str,
) -> None:
    # Given a document of a later release beside one of this release
    engine = make_engine(blank_db_url)
    _migrate(engine, "head")  # 0005's documents, written through the models
    later = {"v": 1, "timing": "scheduled", "tz": "UTC", "frequency": "quarterly"}
    with session_scope(engine) as session:
        session.add(ProcessRequest(process="sample.echo", params={}, timing=OLD_DOCUMENT))
        session.add(ProcessRequest(process="sample.echo", params={}, timing=later))
    try:
        # When the database is downgraded, then it is refused, naming the timing
        with pytest.raises(ValueError, match="0004 has no columns for the timing"):
            _migrate(engine, "0004", down=True)
        # And the database is as it was
        assert _schema(engine)["columns"]["timing"][0] == "JSON"
        assert _documents(engine) == {1: OLD_DOCUMENT, 2: later}
    finally:
        engine.dispose()


def test_0008_adds_a_runs_progress_and_takes_it_back_keeping_the_runs(
    old_database: Engine,
) -> None:
    engine = old_database
    _migrate(engine, "0008")
    progress = {"done": 1, "total": 2, "message": "", "at": "2027-01-01T00:00:00+00:00",
                "first_at": "2027-01-01T00:00:00+00:00", "first_done": 0}  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            ProcessRun.__table__.update().where(ProcessRun.id == 1).values(progress=progress)
        )
    with engine.connect() as connection:
        assert connection.scalar(select(ProcessRun.progress).where(ProcessRun.id == 1)) == progress

    _migrate(engine, "0007", down=True)

    assert "progress" not in {c["name"] for c in inspect(engine).get_columns("bgproc_run")}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_run").scalar() == 3
    _migrate(engine, "head")
    with engine.connect() as connection:
        assert connection.scalar(select(ProcessRun.progress).where(ProcessRun.id == 1)) is None
def test_0007_adds_the_retry_columns_to_existing_rows_and_takes_them_away(
    blank_db_url: str,
) -> None:
    # Given a database at 0006 with a request and a run
    engine = make_engine(blank_db_url)
    _migrate(engine, "0006")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO bgproc_request (process, params, timing, created_at, updated_at)"
            " VALUES ('sample.echo', '{}', '{\"v\": 1, \"timing\": \"immediate\","
            " \"tz\": \"UTC\"}', '2027-01-01', '2027-01-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO bgproc_run (request_id, process, params) VALUES (1, 'sample.echo', '{}')"
        )
    try:
        # When it is upgraded to 0007
        _migrate(engine, "0007")

        # Then the old rows have no policy and are first attempts
        with engine.connect() as connection:  # by hand: the models are at head, not 0007
            assert connection.exec_driver_sql("SELECT retry FROM bgproc_request").all() == [
                (None,)
            ]
            assert connection.exec_driver_sql(
                "SELECT try_number, max_tries, first_run_id FROM bgproc_run"
            ).all() == [(1, None, None)]

        # And downgraded, the columns go and the rows stay
        _migrate(engine, "0006", down=True)
        found = inspect(engine)
        assert "retry" not in {c["name"] for c in found.get_columns("bgproc_request")}
        assert not {"first_run_id", "try_number", "max_tries", "retry_at", "retry_run_id"} & {
            c["name"] for c in found.get_columns("bgproc_run")
        }
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_run").scalar() == 1
    finally:
        engine.dispose()


def test_0009_adds_catch_ups_bound_and_back_turns_catch_up_into_run_once(
    old_database: Engine,
) -> None:
    engine = old_database
    _migrate(engine, "0009")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE bgproc_request SET misfire = 'catch-up', catch_up_max = 5 WHERE id = 1"
        )

    _migrate(engine, "0008", down=True)

    assert "catch_up_max" not in {c["name"] for c in inspect(engine).get_columns("bgproc_request")}
    with engine.connect() as connection:
        misfires = connection.exec_driver_sql("SELECT DISTINCT misfire FROM bgproc_request").all()
    assert misfires == [("run-once",)]
    _migrate(engine, "head")


def test_0010_adds_replace_running_false_for_every_request_and_takes_it_back(
    old_database: Engine,
) -> None:
    engine = old_database
    _migrate(engine, "0010")
    with engine.connect() as connection:
        flags = connection.exec_driver_sql("SELECT DISTINCT replace_running FROM bgproc_request")
        assert [bool(flag) for (flag,) in flags] == [False]
    _migrate(engine, "0009", down=True)
    assert "replace_running" not in {
        c["name"] for c in inspect(engine).get_columns("bgproc_request")
    }
    _migrate(engine, "head")


def test_0011_adds_the_deadline_columns_to_existing_rows_and_takes_them_away(
    old_database: Engine,
) -> None:
    # Given a database at 0010 with requests and runs
    engine = old_database
    _migrate(engine, "0010")

    # When it is upgraded to 0011, then the old rows have no deadlines
    _migrate(engine, "0011")
    with engine.connect() as connection:  # by hand: the models may be past 0011 one day
        assert {row[0] for row in connection.exec_driver_sql(
            "SELECT deadlines FROM bgproc_request")} == {None}  # fmt: skip
        assert connection.exec_driver_sql(
            "SELECT start_by, overdue_at FROM bgproc_run"
        ).all() == [(None, None)] * 3
    assert "ix_bgproc_run_status_start_by" in {
        index["name"] for index in inspect(engine).get_indexes("bgproc_run")
    }

    # And downgraded, the columns go and the rows stay
    _migrate(engine, "0010", down=True)
    found = inspect(engine)
    assert "deadlines" not in {c["name"] for c in found.get_columns("bgproc_request")}
    assert not {"start_by", "overdue_at"} & {c["name"] for c in found.get_columns("bgproc_run")}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_run").scalar() == 3


def test_0012_adds_calendars_and_back_drops_them_keeping_the_requests(
    old_database: Engine,
) -> None:
    engine = old_database
    _migrate(engine, "0012")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO bgproc_calendar (name, tz, dates, yearly, windows, created_at, updated_at)"
            " VALUES ('es', 'Europe/Madrid', '[\"2027-01-06\"]', '[]', '[]',"
            " '2027-01-01 00:00:00', '2027-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO bgproc_request_calendar (request_id, calendar_id) VALUES (1, 1)"
        )
        connection.exec_driver_sql(
            "UPDATE bgproc_request SET on_excluded = 'next-business-day' WHERE id = 1"
        )
    with engine.connect() as connection:  # by hand: the models may be past 0012
        followed = connection.exec_driver_sql(
            "SELECT c.name, r.on_excluded FROM bgproc_request r JOIN bgproc_request_calendar l"
            " ON l.request_id = r.id JOIN bgproc_calendar c ON c.id = l.calendar_id"
        ).all()
    assert followed == [("es", "next-business-day")]

    _migrate(engine, "0011", down=True)

    found = inspect(engine)
    assert not {"bgproc_calendar", "bgproc_request_calendar"} & set(found.get_table_names())
    assert "on_excluded" not in {c["name"] for c in found.get_columns("bgproc_request")}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_request").scalar() >= 1


def test_0013_adds_the_alert_outbox_and_request_destinations_and_takes_them_away(
    old_database: Engine,
) -> None:
    # Given a database at 0012 with requests and runs
    engine = old_database
    _migrate(engine, "0012")

    # When it is upgraded to 0013, the old requests have no destinations and no event waits
    _migrate(engine, "0013")
    with engine.connect() as connection:  # by hand: the models may be past 0013 one day
        assert {row[0] for row in connection.exec_driver_sql(
            "SELECT alerts FROM bgproc_request")} == {None}  # fmt: skip
        assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_alert").scalar() == 0
    with pytest.raises(IntegrityError), engine.begin() as connection:  # one per (run, event)
        for _ in range(2):
            connection.exec_driver_sql(
                "INSERT INTO bgproc_alert (run_id, event, created_at, due_at) "
                "VALUES (1, 'error', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )

    # And downgraded, the table and column go and the rows stay
    _migrate(engine, "0012", down=True)
    found = inspect(engine)
    assert "bgproc_alert" not in found.get_table_names()
    assert "alerts" not in {c["name"] for c in found.get_columns("bgproc_request")}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM bgproc_run").scalar() == 3
    _migrate(engine, "head")
