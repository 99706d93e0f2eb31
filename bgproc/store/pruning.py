"""Pruning: old history forgotten as Etendo's clean-up does, in short batches.

Successes go after 15 days, other finished runs after 30, complete requests 15 days after
their last change; never a queued or processing run. One short transaction per batch, so
workers keep writing while a million rows go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, func, select

from bgproc.errors import InvalidInput
from bgproc.statuses import RequestStatus, RunStatus
from bgproc.store.db import read_session, session_scope
from bgproc.store.models import ProcessRequest, ProcessRun
from bgproc.store.runview import TERMINAL, happened

# Etendo's clean-up defaults: successes go after 15 days, other finished runs after 30,
# complete requests 15 days after their last change.
KEEP_SUCCESS = timedelta(days=15)
KEEP_FINISHED = timedelta(days=30)
KEEP_COMPLETE_REQUEST = timedelta(days=15)
PRUNE_BATCH = 5000  # runs per transaction: pruning never holds the write lock for long
PRUNE_REQUEST_BATCH = 100  # each deleted request also un-links its runs (FK SET NULL)


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` deleted, or (``dry_run``) would delete."""

    runs: dict[str, int]  # top-level runs by status, in RunStatus order
    child_runs: int = 0  # runs of the pruned groups, deleted with them (FK CASCADE)
    requests: int = 0
    dry_run: bool = False

    @property
    def success_runs(self) -> int:
        return self.runs.get(RunStatus.success.value, 0)

    @property
    def other_runs(self) -> int:
        return sum(self.runs.values()) - self.success_runs

    def as_json(self) -> dict[str, Any]:
        return {
            "success_runs": self.success_runs,
            "other_runs": self.other_runs,
            "child_runs": self.child_runs,
            "requests": self.requests,
            "runs_by_status": self.runs,
            "dry_run": self.dry_run,
        }


def prune(
    engine: Engine,
    *,
    now: datetime,
    older_than: timedelta | None = None,
    batch_size: int = PRUNE_BATCH,
    dry_run: bool = False,
) -> Pruned:
    """Forget old history as Etendo's clean-up does, or everything finished before
    ``now - older_than``; never a queued or processing run. One short transaction per
    batch, so workers keep writing while a million rows go. ``dry_run`` counts what the
    same rules would delete, and deletes nothing."""
    if older_than is not None and older_than <= timedelta(0):
        raise InvalidInput("older-than", "must be longer than 0")
    rules = [
        ([RunStatus.success], KEEP_SUCCESS),
        (sorted(TERMINAL - {RunStatus.success}), KEEP_FINISHED),
    ]
    runs: Counter[str] = Counter()
    children = 0
    for statuses, keep in rules:
        before = now - (older_than or keep)
        by_status, steps = (
            _count_runs(engine, statuses, before)
            if dry_run
            else _prune_runs(engine, statuses, before, batch_size)
        )
        runs.update(by_status)
        children += steps
    before = now - (older_than or KEEP_COMPLETE_REQUEST)
    requests = _count_requests(engine, before) if dry_run else _prune_requests(engine, before)
    ordered = {status.value: runs[status.value] for status in RunStatus if runs[status.value]}
    return Pruned(ordered, children, requests, dry_run)


def _count_runs(
    engine: Engine, statuses: Collection[RunStatus], before: datetime
) -> tuple[Counter[str], int]:
    """What :func:`_prune_runs` would delete: top-level runs by status, and their children."""
    table = ProcessRun.__table__
    parents = table.alias("parent")
    old = _prunable(table.c, statuses, before)
    by_status = select(table.c.status, func.count()).where(*old).group_by(table.c.status)
    old_parents = select(parents.c.id).where(*_prunable(parents.c, statuses, before))
    children = (
        select(func.count()).select_from(table).where(table.c.group_run_id.in_(old_parents))
    )
    with read_session(engine) as session:
        rows = session.execute(by_status).all()
        found = Counter({RunStatus(status).value: count for status, count in rows})
        return found, session.scalar(children) or 0


def _prune_runs(
    engine: Engine, statuses: Collection[RunStatus], before: datetime, batch_size: int
) -> tuple[Counter[str], int]:
    """Delete top-level runs that ended in ``statuses`` and happened before ``before``.

    A group's children go with their group (FK CASCADE), never alone: a group run
    ends after its last child, so it is pruned last. Returns (runs by status, children).
    """
    table = ProcessRun.__table__
    old = _prunable(table.c, statuses, before)
    runs: Counter[str] = Counter()
    children = 0
    while True:
        with session_scope(engine) as session:
            rows = session.execute(
                select(table.c.id, table.c.status).where(*old).limit(batch_size)
            ).all()
            if not rows:
                return runs, children
            ids = [row.id for row in rows]
            children += (
                session.scalar(
                    select(func.count()).select_from(table).where(table.c.group_run_id.in_(ids))
                )
                or 0
            )
            session.execute(delete(table).where(table.c.id.in_(ids)))
            runs.update(RunStatus(row.status).value for row in rows)


def _count_requests(engine: Engine, before: datetime) -> int:
    """What :func:`_prune_requests` would delete."""
    table = ProcessRequest.__table__
    with read_session(engine) as session:
        query = select(func.count()).select_from(table).where(*_old_requests(table.c, before))
        return session.scalar(query) or 0


def _prune_requests(engine: Engine, before: datetime) -> int:
    """Delete complete requests untouched since ``before``; their runs stay (FK SET NULL)."""
    table = ProcessRequest.__table__
    old = _old_requests(table.c, before)
    deleted = 0
    while True:
        with session_scope(engine) as session:
            ids = list(
                session.scalars(select(table.c.id).where(*old).limit(PRUNE_REQUEST_BATCH))
            )
            if not ids:
                return deleted
            session.execute(delete(table).where(table.c.id.in_(ids)))
            deleted += len(ids)


def _prunable(
    columns: Any, statuses: Collection[RunStatus], before: datetime
) -> list[ColumnElement[bool]]:
    """Top-level runs that ended in ``statuses`` and happened before ``before``: what a prune
    deletes (a group's children go with their group)."""
    return [
        columns.status.in_(statuses),
        columns.group_run_id.is_(None),
        *happened(columns, None, before),
    ]


def _old_requests(columns: Any, before: datetime) -> list[ColumnElement[bool]]:
    """Complete requests untouched since ``before``: what a prune deletes."""
    return [columns.status == RequestStatus.complete, columns.updated_at < before]
