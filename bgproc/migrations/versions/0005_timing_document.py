"""A request's timing as one JSON document instead of a column per field.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

The document is version 1 of ``Timing.as_dict()``: ``{"v": 1, "timing": "scheduled",
"tz": "Europe/Madrid", "frequency": "daily", "at": "09:00:00", ...}``, keyed as the request
options are and holding only the fields that are set, so that a new frequency or field needs
no migration. The conversion both ways is written out here, frozen: later changes to the
timing code cannot change what this revision does.

Downgrade writes the columns back. A yearly plan, which 0004 cannot hold, becomes the Quartz
cron expression that fires on the same days (Quartz years end in 2099; so do its fires).

SQLite alters a table by copying it: as in 0002, the run-to-request links and the id counter
that the copy would clear are saved first and put back after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies of the column types of bgproc.models at 0004.
UTC_DATETIME = sa.DateTime(timezone=True)
COLUMNS = {  # 0004's timing columns: type, and the key of the field in the document
    "timing": (sa.String(16), "timing"),
    "start_at": (UTC_DATETIME, "start"),
    "finish_at": (UTC_DATETIME, "finish"),
    "timezone": (sa.String(64), "tz"),
    "frequency": (sa.String(16), "frequency"),
    "interval": (sa.Integer(), "interval"),
    "repetitions": (sa.Integer(), "repetitions"),
    "daily_option": (sa.String(16), "daily_option"),
    "at_time": (sa.String(8), "at"),
    "days": (sa.String(64), "days"),
    "day": (sa.String(8), "day"),
    "ordinal": (sa.String(8), "ordinal"),
    "weekday": (sa.String(3), "weekday"),
    "cron": (sa.String(200), "cron"),
}
DOCUMENT = "timing_document"  # the new column, until the old ``timing`` is gone
KIND = "timing_kind"  # the old ``timing`` column on the way back, while the document has its name
FREQUENCIES = (None, "seconds", "minutes", "hourly", "daily", "weekly", "monthly", "cron")  # 0004's
QUARTZ_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 1)}
ORDINALS = ("first", "second", "third", "fourth")
SAVED_LINKS = "bgproc_0005_run_request"  # a TEMP table: it vanishes with the connection


def upgrade() -> None:
    op.add_column("bgproc_request", sa.Column(DOCUMENT, sa.JSON(), nullable=True))
    old = _table(*((name, kind) for name, (kind, _) in COLUMNS.items()))
    rows = op.get_bind().execute(sa.select(old)).mappings().all()
    _update(_table((DOCUMENT, sa.JSON())), {row["id"]: {DOCUMENT: _document(row)} for row in rows})
    with _sqlite_links_kept(), _batch() as batch:
        for name in COLUMNS:
            batch.drop_column(name)
        batch.alter_column(
            DOCUMENT, new_column_name="timing", existing_type=sa.JSON(), nullable=False
        )


def downgrade() -> None:
    back = [(KIND if name == "timing" else name, kind) for name, (kind, _) in COLUMNS.items()]
    for name, kind in back:
        op.add_column("bgproc_request", sa.Column(name, kind))
    rows = op.get_bind().execute(sa.select(_table(("timing", sa.JSON())))).mappings().all()
    _update(_table(*back), {row["id"]: _columns(row["timing"]) for row in rows})
    with _sqlite_links_kept(), _batch() as batch:
        batch.drop_column("timing")
        batch.alter_column(
            KIND, new_column_name="timing", existing_type=sa.String(16), nullable=False
        )
        batch.alter_column("timezone", existing_type=sa.String(64), nullable=False)


def _document(row: Any) -> dict[str, Any]:
    """Version 1 of the timing document, from 0004's columns."""
    document: dict[str, Any] = {"v": 1}
    for name, (_, key) in COLUMNS.items():
        value = row[name]
        if value is None:
            continue
        if isinstance(value, datetime):  # SQLite gives UTC back without its zone
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
            value = value.isoformat()
        elif name == "days":
            value = value.split(",")
        document[key] = value
    return document


def _columns(document: dict[str, Any]) -> dict[str, Any]:
    """0004's columns, from version 1 of the timing document; refused when they cannot
    hold it (a later release's document), so that the downgrade leaves nothing half done."""
    if document.get("frequency") == "yearly":
        document = _yearly_as_cron(document)
    unknown = set(document) - {key for _, key in COLUMNS.values()} - {"v"}
    if document.get("v") != 1 or unknown or document.get("frequency") not in FREQUENCIES:
        raise ValueError(f"revision 0004 has no columns for the timing {document}")
    values: dict[str, Any] = {}
    for name, (_, key) in COLUMNS.items():
        value = document.get(key)
        if value is not None and name in ("start_at", "finish_at"):
            value = datetime.fromisoformat(value)
        elif value is not None and name == "days":
            value = ",".join(value)
        values[KIND if name == "timing" else name] = value
    return values


def _yearly_as_cron(document: dict[str, Any]) -> dict[str, Any]:
    """The Quartz cron plan of a yearly one: same days, same time, same start and DST rules."""
    hour, minute, second = document["at"].split(":")
    day = document.get("day")
    if day:
        day_of_month, day_of_week = ("L" if day == "last" else day), "?"
    else:
        which = document["ordinal"]
        nth = "L" if which == "last" else f"#{ORDINALS.index(which) + 1}"
        day_of_month, day_of_week = "?", f"{QUARTZ_DAYS[document['weekday']]}{nth}"
    fields = [int(second), int(minute), int(hour), day_of_month, document["month"], day_of_week]
    every = document.get("interval") or 1
    if every > 1:  # counted from the start's year, as yearly counts them
        start = datetime.fromisoformat(document["start"]).astimezone(ZoneInfo(document["tz"]))
        fields.append(f"{start.year}/{every}")
    plan = ("frequency", "interval", "at", "month", "day", "ordinal", "weekday")
    kept = {key: value for key, value in document.items() if key not in plan}
    return {**kept, "frequency": "cron", "cron": " ".join(map(str, fields))}


def _table(*columns: tuple[str, Any]) -> sa.TableClause:
    return sa.table("bgproc_request", sa.column("id", sa.Integer()), *map(_column, columns))


def _column(column: tuple[str, Any]) -> sa.ColumnClause[Any]:
    return sa.column(column[0], column[1])


def _update(table: sa.TableClause, values: dict[int, dict[str, Any]]) -> None:
    """Write each row's values (by id) in one statement run for every row."""
    if not values:
        return
    names = list(next(iter(values.values())))
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(f"b_{name}") for name in names})
    )
    rows = [{"b_id": id_, **{f"b_{k}": v for k, v in row.items()}} for id_, row in values.items()]
    op.get_bind().execute(statement, rows)


def _batch() -> Any:
    return op.batch_alter_table("bgproc_request", table_kwargs={"sqlite_autoincrement": True})


@contextmanager
def _sqlite_links_kept() -> Iterator[None]:
    """On SQLite, put back the run-to-request links and the id counter that a copy of
    ``bgproc_request`` clears; elsewhere, nothing to do."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    op.execute(f"CREATE TEMP TABLE {SAVED_LINKS} (run_id INTEGER PRIMARY KEY, request_id INTEGER)")
    op.execute(
        f"INSERT INTO {SAVED_LINKS} SELECT id, request_id FROM bgproc_run"
        " WHERE request_id IS NOT NULL"
    )
    last_id = bind.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'bgproc_request'"))
    yield
    op.execute(
        f"UPDATE bgproc_run SET request_id = (SELECT request_id FROM {SAVED_LINKS}"
        f" WHERE run_id = bgproc_run.id) WHERE id IN (SELECT run_id FROM {SAVED_LINKS})"
    )
    op.execute(f"DROP TABLE {SAVED_LINKS}")
    if last_id is not None:
        op.execute(
            sa.text(
                "UPDATE sqlite_sequence SET seq = max(seq, :last_id) WHERE name = 'bgproc_request'"
            ).bindparams(last_id=last_id)
        )
