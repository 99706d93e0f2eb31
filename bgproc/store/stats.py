"""The Process Monitor's statistics (``monitor stats``): per process, counts by status,
success rate, p50/p95/max duration and last run, from one scan of an index."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, func, select
from sqlalchemy.orm import Session

from bgproc.statuses import RunStatus
from bgproc.store.db import read_session
from bgproc.store.models import ProcessRun
from bgproc.store.runview import TERMINAL, filters, iso

# Finished without running (a fire missed, refused while another ran, or not started by its
# start deadline): counted apart, never a failure of the process.
NEVER_RAN = frozenset({RunStatus.skipped, RunStatus.misfired, RunStatus.expired})
PERCENTILES = (0.5, 0.95)


@dataclass(frozen=True)
class ProcessStats:
    """One process's line of ``monitor stats``: counts by status and finished durations."""

    process: str
    counts: dict[str, int]  # every status, zeros included
    p50_ms: float | None  # of finished runs with a duration, interpolated (percentile_cont)
    p95_ms: float | None
    max_ms: int | None
    last_run_id: int | None  # the newest run (highest id) in the filter
    last_run_at: datetime | None  # its start, else its queueing (``RunView.when``)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for status, n in self.counts.items() if status in TERMINAL)

    @property
    def ran(self) -> int:
        """Finished runs that ran: success, error, killed or lost."""
        return sum(n for status, n in self.counts.items() if status in TERMINAL - NEVER_RAN)

    @property
    def success_rate(self) -> float | None:
        """Successes among the finished runs that ran; None before any did."""
        ran = self.ran
        return self.counts.get(RunStatus.success.value, 0) / ran if ran else None

    def as_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "total": self.total,
            "counts": self.counts,
            "finished": self.finished,
            "ran": self.ran,
            "success_rate": self.success_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
            "last_run_id": self.last_run_id,
            "last_run_at": iso(self.last_run_at),
        }


def process_stats(
    engine: Engine, process: str | None = None, since: datetime | None = None
) -> list[ProcessStats]:
    """Per process: counts by status, success rate, p50/p95/max duration, last run."""
    columns = ProcessRun.__table__.c
    with read_session(engine) as session:
        found = _aggregate(session, process, since)
        last_ids = {name: parts[-1] for name, parts in found.items()}
        when = {
            row.id: row.started_at or row.queued_at or row.scheduled_at or row.ended_at
            for row in session.execute(
                select(
                    columns.id,
                    columns.started_at,
                    columns.queued_at,
                    columns.scheduled_at,
                    columns.ended_at,
                ).where(columns.id.in_(list(last_ids.values())))
            )
        }
    return [
        ProcessStats(
            process=name,
            counts=counts,
            p50_ms=p50,
            p95_ms=p95,
            max_ms=longest,
            last_run_id=last_id,
            last_run_at=when.get(last_id),
        )
        for name, (counts, p50, p95, longest, last_id) in sorted(found.items())
    ]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """``percentile_cont(q)`` of ascending values: interpolated between the closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_Aggregate = tuple[dict[str, int], float | None, float | None, int | None, int]


def aggregate_query(
    dialect: str, process: str | None = None, since: datetime | None = None
) -> Select[Any]:
    """Counts by status, p50/p95/max duration and newest id per process, in one scan of
    the (process, status, duration_ms) index (the table is not read without a filter).

    PostgreSQL computes the percentiles itself (``percentile_cont``). SQLite has none, and
    sorting in SQL or fetching row by row costs seconds over a million runs, so it hands
    each process's durations over as one text, parsed as JSON (C-fast, where ``int`` per
    value costs 0.4 s per million) and sorted by :func:`_aggregate`.
    """
    columns = ProcessRun.__table__.c
    timed = and_(columns.status.in_(sorted(TERMINAL)), columns.duration_ms.is_not(None))
    group: ColumnElement[str] = columns.process
    if since is not None and dialect == "sqlite":
        # SQLite keeps no statistics: it would read a period through that index, by process
        # (1.6 s over a million runs), rather than by time, then sort it (0.13 s)
        group = columns.process.concat("")
    where = filters(columns, since=since)
    if process is not None:
        where.append(group == process)
    if dialect == "postgresql":
        durations = [
            func.percentile_cont(q).within_group(columns.duration_ms).filter(timed)
            for q in PERCENTILES
        ]
    else:
        durations = [func.group_concat(columns.duration_ms, ",").filter(timed)]
    return (
        select(
            group,
            *(func.count().filter(columns.status == status) for status in RunStatus),
            *durations,
            func.max(columns.duration_ms).filter(timed),
            func.max(columns.id),
        )
        .where(*where)
        .group_by(group)
    )


def _aggregate(
    session: Session, process: str | None, since: datetime | None
) -> dict[str, _Aggregate]:
    """The stats of :func:`aggregate_query`, by process."""
    query = aggregate_query(session.get_bind().dialect.name, process, since)
    found: dict[str, _Aggregate] = {}
    for name, *values in session.execute(query):
        counts = dict(zip((s.value for s in RunStatus), values[: len(RunStatus)], strict=True))
        *spread, longest, last_id = values[len(RunStatus) :]
        if len(spread) == 1:  # SQLite: the durations themselves
            ordered = sorted(json.loads(f"[{spread[0]}]")) if spread[0] else []
            spread = [percentile(ordered, q) for q in PERCENTILES]
        p50, p95 = (None if p is None else float(p) for p in spread)
        found[name] = (counts, p50, p95, longest, last_id)
    return found
