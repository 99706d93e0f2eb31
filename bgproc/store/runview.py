"""A run as callers read it (:class:`RunView`), and the monitor's filters on run rows.

When a run happened is told twice here, once in Python (:attr:`RunView.when`) and once in
SQL (:func:`happened`, in a form the indexes serve); the run store, its statistics and its
pruning all filter by it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, func, or_
from sqlalchemy import type_coerce as as_type

from bgproc.errors import NotFound
from bgproc.progress import Progress
from bgproc.registry import Registry
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun

TERMINAL = frozenset(  # the statuses a run ends in: nothing moves it on from them
    {
        RunStatus.success,
        RunStatus.error,
        RunStatus.skipped,
        RunStatus.killed,
        RunStatus.misfired,
        RunStatus.lost,
        RunStatus.expired,
    }
)


def iso(instant: datetime | None) -> str | None:
    """An instant as every ``--json`` shows it (ISO 8601 with its offset)."""
    return instant.isoformat() if instant is not None else None


@dataclass(frozen=True)
class RunView:
    """A run as callers read it."""

    id: int
    request_id: int | None
    process: str
    params: dict[str, Any]
    status: RunStatus
    channel: Channel
    scheduled_at: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    worker: str | None
    attempt: int
    error: str | None
    traceback: str | None
    result: Any
    task_id: str | None
    log: str | None
    group_run_id: int | None = None
    progress: Progress | None = None  # the latest ctx.progress report
    first_run_id: int | None = None  # a retry's first attempt (the fire's first run)
    try_number: int = 1
    max_tries: int | None = None  # None: no retry policy came into play
    retry_at: datetime | None = None  # its retry is due then (cleared if it was stopped)
    retry_run_id: int | None = None
    start_by: datetime | None = None  # it must start by then, or it ends expired
    overdue_at: datetime | None = None  # when it went past its maximum runtime

    @property
    def overdue(self) -> bool:
        """Still going past its maximum runtime (what the monitor flags)."""
        return self.overdue_at is not None and self.status is RunStatus.processing

    @property
    def retry(self) -> dict[str, Any] | None:
        """Its place among its fire's attempts, as ``"retry"`` in JSON; None outside retries."""
        if self.max_tries is None:
            return None
        return {
            "attempt": self.try_number,
            "of": self.max_tries,
            "first_run_id": self.first_run_id or self.id,
            "retrying_at": iso(self.retry_at),
            "retry_run_id": self.retry_run_id,
        }

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def result_json(self) -> str | None:
        """The result as JSON text, as ``monitor show`` prints it."""
        return None if self.result is None else json.dumps(self.result, ensure_ascii=False)

    @property
    def when(self) -> datetime | None:
        """When it happened, as lists filter it: its start, else queueing, due or end time."""
        return self.started_at or self.queued_at or self.scheduled_at or self.ended_at

    def masked(self, registry: Registry) -> RunView:
        """The view as anyone may see it: secret parameters as ``***``.

        A process no longer registered is shown as stored: there is no declaration left
        to tell its secrets (sync and beat store masked copies for such rows).
        """
        try:
            spec = registry.get(self.process)
        except NotFound:
            return self
        return replace(self, params=spec.masked(self.params))

    def as_json(self, full: bool = True) -> dict[str, Any]:
        """``monitor show --json`` (``full``) or one item of ``monitor list --json``."""
        data: dict[str, Any] = {
            "id": self.id,
            "request_id": self.request_id,
            "group_run_id": self.group_run_id,
            "process": self.process,
            "params": self.params,
            "status": self.status.value,
            "channel": self.channel.value,
            "scheduled_at": iso(self.scheduled_at),
            "queued_at": iso(self.queued_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_ms": self.duration_ms,
            "worker": self.worker,
            "attempt": self.attempt,
            "error": self.error,
            "task_id": self.task_id,
            "progress": None if self.progress is None else self.progress.as_json(),
            "retry": self.retry,
            "start_by": iso(self.start_by),
            "overdue_at": iso(self.overdue_at),
        }
        if full:
            data.update(traceback=self.traceback, result=self.result, log=self.log)
        return data


def view_of(row: ProcessRun, full: bool = True) -> RunView:
    """The view of a row; not ``full``: without the (possibly large) log, traceback, result."""
    return RunView(
        id=row.id,
        request_id=row.request_id,
        process=row.process,
        params=dict(row.params or {}),
        status=RunStatus(row.status),
        channel=Channel(row.channel),
        scheduled_at=row.scheduled_at,
        queued_at=row.queued_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_ms=row.duration_ms,
        worker=row.worker,
        attempt=row.attempt,
        error=row.error,
        traceback=row.traceback if full else None,
        result=row.result if full else None,
        task_id=row.task_id,
        log=row.log if full else None,
        group_run_id=row.group_run_id,
        progress=None if row.progress is None else Progress.from_json(row.progress),
        first_run_id=row.first_run_id,
        try_number=row.try_number,
        max_tries=row.max_tries,
        retry_at=row.retry_at,
        retry_run_id=row.retry_run_id,
        start_by=row.start_by,
        overdue_at=row.overdue_at,
    )


def happened(
    columns: Any, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    """``since <= RunView.when < until`` in a form the ``started_at`` indexes serve.

    A run that never started (queued, misfired, skipped) is placed by its queueing,
    due or end time; the ``started_at IS NULL`` branch stays on the index too.
    """
    if since is None and until is None:
        return []
    fallback = func.coalesce(columns.queued_at, columns.scheduled_at, columns.ended_at)
    started: list[ColumnElement[bool]] = []
    other: list[ColumnElement[bool]] = []
    if since is not None:
        started.append(columns.started_at >= since)
        other.append(fallback >= since)
    if until is not None:
        started.append(columns.started_at < until)
        other.append(fallback < until)
    return [or_(and_(*started), and_(columns.started_at.is_(None), *other))]


def filters(
    columns: Any,
    process: str | None = None,
    status: RunStatus | None = None,
    request_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """The WHERE terms of the monitor's filters, on a table's or a subquery's columns."""
    terms = happened(columns, since, until)
    if process is not None:
        terms.append(columns.process == process)
    if status is not None:
        if process is None and request_id is None:
            terms.append(columns.status == status)
        else:
            # SQLite keeps no statistics and may pick the status index, where most runs are
            # successes; ``status || ''`` leaves the choice to the process's or request's.
            terms.append(as_type(columns.status, String).concat("") == status.value)
    if request_id is not None:
        terms.append(columns.request_id == request_id)
    return terms
