"""The bounded reads behind ``/metrics``: none scans the run table, and each says its bound.

- :func:`recent_runs`: the runs touched in the last ``window`` among the newest ``cap`` by
  id, counted by process and status with their durations and start lateness in buckets,
  in SQL. A primary-key range: at most ``cap`` rows, however many the table holds.
- :func:`processing`: the runs processing now, by process: a range of the (status,
  started_at) index, one entry per running run.
- :func:`last_successes`: each scheduled request's newest successful end: one seek of the
  (request_id, status, ended_at) index (migration 0006) per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    select,
)

from bgproc.statuses import GROUP_LABEL_PREFIX, RequestStatus, RunStatus
from bgproc.store.db import reading
from bgproc.store.models import ProcessGroup, ProcessRequest, ProcessRun

# Bucket bounds in seconds: runs last from milliseconds to hours; a fire starts within
# milliseconds of its due time when all is well, seconds late when workers are busy.
DURATION_BOUNDS_S = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
LATENESS_BOUNDS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
FINISHED = (RunStatus.success, RunStatus.error, RunStatus.killed, RunStatus.lost)


@dataclass(frozen=True)
class Buckets:
    """A histogram: how many values are at or under each bound, how many in all, their sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # cumulative, one per bound
    count: int  # every value (the +Inf bucket)
    total: float

    def __add__(self, other: Buckets) -> Buckets:
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Buckets(self.bounds, counts, self.count + other.count, self.total + other.total)


@dataclass(frozen=True)
class RecentRuns:
    """The runs of one process in one status, in the window."""

    process: str
    status: RunStatus
    count: int
    duration: Buckets  # finished runs with a duration
    lateness: Buckets  # runs that started, from their due time


@dataclass(frozen=True)
class LastSuccess:
    """A scheduled request and its newest success (None: none on record)."""

    request_id: int
    name: str | None
    process: str  # its process, or group:NAME
    created_at: datetime
    succeeded_at: datetime | None


def _lateness_s(dialect: str, started: Any, due: Any) -> ColumnElement[float]:
    """Seconds from due to start: SQLite keeps instants as text, PostgreSQL as timestamptz.
    SQLite's Julian days are exact to ~40 µs at today's dates: rounded to the millisecond."""
    if dialect == "sqlite":
        return func.round((func.julianday(started) - func.julianday(due)) * 86400.0, 3)
    return cast(extract("epoch", started - due), Float)


@dataclass
class _Tally:
    """One process and status being counted: values per bucket slot, and their sums."""

    count: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_S) + 1))
    duration_s: float = 0.0
    lateness: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BOUNDS_S) + 1))
    lateness_s: float = 0.0

    def recent(self, process: str, status: RunStatus) -> RecentRuns:
        duration = _cumulative(self.durations, DURATION_BOUNDS_S, self.duration_s)
        lateness = _cumulative(self.lateness, LATENESS_BOUNDS_S, self.lateness_s)
        return RecentRuns(process, status, self.count, duration, lateness)


def _cumulative(counts: list[int], bounds: tuple[float, ...], total: float) -> Buckets:
    """Buckets from how many values fell in each slot (the last: above every bound)."""
    running, cumulative = 0, []
    for count in counts[: len(bounds)]:
        running += count
        cumulative.append(running)
    return Buckets(bounds, tuple(cumulative), sum(counts), total)


def _slot(value: Any, bounds: tuple[float, ...], scale: float = 1.0) -> ColumnElement[int]:
    """The first bound ``value`` is at or under (its index), past the last, or -1 for NULL."""
    arms = [(value.is_(None), -1), *((value <= b * scale, i) for i, b in enumerate(bounds))]
    return case(*arms, else_=len(bounds))


def recent_runs(engine: Engine, since: datetime, cap: int) -> list[RecentRuns]:
    """The runs touched (ended, started, queued or due) since ``since`` among the newest
    ``cap`` ids, by process and status. A primary-key range of at most ``cap`` rows, read
    first (MATERIALIZED: else SQLite walks its (process, status, …) index, every run of
    it, to group without sorting); then grouped by bucket."""
    run = ProcessRun.__table__
    newest = select(func.max(run.c.id)).scalar_subquery()
    touched = func.coalesce(run.c.ended_at, run.c.started_at, run.c.queued_at, run.c.scheduled_at)
    timed = and_(run.c.status.in_(FINISHED), run.c.duration_ms.is_not(None))
    with reading(engine) as connection:
        late = _lateness_s(connection.dialect.name, run.c.started_at, run.c.scheduled_at)
        window = (
            select(run.c.process, run.c.status,
                   case((timed, run.c.duration_ms)).label("duration_ms"), late.label("late"))
            .where(run.c.id > newest - cap, touched >= since)
            .cte("recent")
            .prefix_with("MATERIALIZED")
        )  # fmt: skip
        w = window.c
        slots = (
            _slot(w.duration_ms, DURATION_BOUNDS_S, 1000).label("duration_slot"),
            _slot(w.late, LATENESS_BOUNDS_S).label("late_slot"),
        )
        rows = connection.execute(
            select(w.process, w.status, *slots, func.count(), func.sum(w.duration_ms),
                   func.sum(w.late))
            .group_by(w.process, w.status, *slots)
        ).all()  # fmt: skip
    tallies: dict[tuple[str, RunStatus], _Tally] = {}
    for process, status, duration_slot, late_slot, count, duration_ms, late_s in rows:
        tally = tallies.setdefault((process, RunStatus(status)), _Tally())
        tally.count += count
        if duration_slot >= 0:
            tally.durations[duration_slot] += count
            tally.duration_s += float(duration_ms) / 1000
        if late_slot >= 0:
            tally.lateness[late_slot] += count
            tally.lateness_s += float(late_s)
    return [tally.recent(process, status) for (process, status), tally in sorted(tallies.items())]


def processing(engine: Engine, overdue: bool = False) -> dict[str, int]:
    """How many runs are processing now (``overdue``: of those, past their maximum
    runtime), by process (only the status index's range)."""
    run = ProcessRun.__table__
    # By process, but not through the (process, …) index: it would read every run in
    # process order to skip the sort of a handful
    process = run.c.process.concat("")
    late = [run.c.overdue_at.is_not(None)] if overdue else []
    query = (
        select(process, func.count())
        .where(run.c.status == RunStatus.processing, *late)
        .group_by(process)
    )
    with reading(engine) as connection:
        return {name: int(count) for name, count in connection.execute(query)}


def last_successes(engine: Engine) -> list[LastSuccess]:
    """Every scheduled request with the end of its newest success: one index seek each."""
    run, request, group = ProcessRun.__table__, ProcessRequest.__table__, ProcessGroup.__table__
    succeeded = (
        select(func.max(run.c.ended_at))
        .where(run.c.request_id == request.c.id, run.c.status == RunStatus.success)
        .scalar_subquery()
    )
    label = func.coalesce(request.c.process, literal(GROUP_LABEL_PREFIX).concat(group.c.name))
    query = (
        select(request.c.id, request.c.name, label, request.c.created_at, succeeded)
        .select_from(request.outerjoin(group))
        .where(request.c.status == RequestStatus.scheduled)
        .order_by(request.c.id)
    )
    with reading(engine) as connection:
        return [LastSuccess(*row) for row in connection.execute(query)]
