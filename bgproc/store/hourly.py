"""The Stats page's series: runs per hour by status, and one process's durations per hour.

Both are grouped by hour in SQL over a window that the ``started_at`` indexes serve, so a
chart reads one row per hour and status, never the runs themselves. Hours are UTC hours
(the pages label them in the installation's zone); an hour without runs is there too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, Subquery, func, select, union_all
from sqlalchemy import type_coerce as as_type

from bgproc.statuses import RunStatus
from bgproc.store.db import reading
from bgproc.store.models import ProcessRun
from bgproc.store.runview import TERMINAL, iso
from bgproc.store.stats import percentile
from bgproc.timing.walltime import utc_hours


@dataclass(frozen=True)
class HourCounts:
    """The runs of one hour, by status (every status, zeros included)."""

    hour: datetime  # its start, aware UTC
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        return {"hour": iso(self.hour), "counts": self.counts, "total": self.total}


@dataclass(frozen=True)
class HourDurations:
    """One process's finished runs of one hour that have a duration: how many, p50, max."""

    hour: datetime
    runs: int
    p50_ms: float | None  # interpolated as ``monitor stats`` does (percentile_cont)
    max_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return {"hour": iso(self.hour), "runs": self.runs, "p50_ms": self.p50_ms,
                "max_ms": self.max_ms}  # fmt: skip


def _hour(dialect: str, instant: ColumnElement[Any]) -> ColumnElement[Any]:
    """The UTC hour of an instant column, as the backend can cut it.

    SQLite keeps UTC instants as ``YYYY-MM-DD HH:MM:SS…`` text: its first 13 characters
    name the hour. PostgreSQL truncates in its session's zone unless told UTC.
    """
    if dialect == "sqlite":
        return func.substr(instant, 1, 13)
    return func.date_trunc("hour", func.timezone("UTC", instant))


def _window(
    dialect: str, since: datetime, until: datetime, *terms: ColumnElement[bool]
) -> Subquery:
    """The runs that happened in ``[since, until)`` (as ``RunView.when`` places them), with
    their hour, status and duration: one index range for those that started, one for those
    that never did. (One OR of both, as :func:`~bgproc.store.runview.happened` has it, makes
    SQLite read every run of a process through its (process, started_at) index.)"""
    c = ProcessRun.__table__.c
    fallback = func.coalesce(c.queued_at, c.scheduled_at, c.ended_at)
    started = select(_hour(dialect, c.started_at).label("hour"), c.status, c.duration_ms).where(
        c.started_at >= since, c.started_at < until, *terms
    )
    never = select(_hour(dialect, fallback).label("hour"), c.status, c.duration_ms).where(
        c.started_at.is_(None), fallback >= since, fallback < until, *terms
    )
    return union_all(started, never).subquery("window")


def _hour_of(value: Any) -> datetime:
    """A bucket read back as an aware UTC hour (text on SQLite, naive UTC on PostgreSQL)."""
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC)


def hourly_counts(
    engine: Engine, since: datetime, until: datetime, process: str | None = None
) -> list[HourCounts]:
    """Runs per hour and status in ``[since, until)``: one row per hour and status read."""
    c = ProcessRun.__table__.c
    only = [c.process == process] if process is not None else []
    with reading(engine) as connection:
        w = _window(connection.dialect.name, since, until, *only).c
        rows = connection.execute(
            select(w.hour, w.status, func.count()).group_by(w.hour, w.status)
        ).all()
    found: dict[datetime, dict[str, int]] = {}
    for hour, status, count in rows:
        found.setdefault(_hour_of(hour), {})[RunStatus(status).value] = int(count)
    return [
        HourCounts(hour, {s.value: found.get(hour, {}).get(s.value, 0) for s in RunStatus})
        for hour in utc_hours(since, until)
    ]


def hourly_durations(
    engine: Engine, process: str, since: datetime, until: datetime
) -> list[HourDurations]:
    """``process``'s p50 and max duration per hour in ``[since, until)``, grouped in SQL.

    As ``monitor stats``: PostgreSQL computes the median itself; SQLite has no percentile,
    so each hour's durations come as one text, parsed as JSON and interpolated here.
    """
    c = ProcessRun.__table__.c
    # ``status || ''``: else SQLite reads the process's (process, status, duration_ms) index,
    # every run of it, instead of the window's range
    finished = as_type(c.status, String).concat("").in_(sorted(TERMINAL))
    with reading(engine) as connection:
        dialect = connection.dialect.name
        w = _window(dialect, since, until, c.process == process, finished,
                    c.duration_ms.is_not(None)).c  # fmt: skip
        if dialect == "postgresql":
            middle = func.percentile_cont(0.5).within_group(w.duration_ms)
        else:
            middle = func.group_concat(w.duration_ms, ",")
        rows = connection.execute(
            select(w.hour, func.count(), middle, func.max(w.duration_ms)).group_by(w.hour)
        ).all()
    found: dict[datetime, HourDurations] = {}
    for hour, count, spread, longest in rows:
        if isinstance(spread, str):
            spread = percentile(sorted(json.loads(f"[{spread}]")), 0.5)
        at = _hour_of(hour)
        found[at] = HourDurations(at, int(count), float(spread), int(longest))
    return [found.get(hour, HourDurations(hour, 0, None, None)) for hour in utc_hours(since, until)]
