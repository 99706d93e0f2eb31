"""The run store: one row per run, as the Process Monitor shows it (SPEC §4). No Celery here.

Values are stored as given (the database is trusted like the request table);
every output masks secret parameters through the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from bgproc.db import session_scope
from bgproc.errors import NotFound
from bgproc.models import Channel, ProcessRun, RunStatus

MAX_RESULT_CHARS = 64_000  # a result is a summary; a bigger one is cut, visibly
TERMINAL = frozenset(
    {
        RunStatus.success,
        RunStatus.error,
        RunStatus.skipped,
        RunStatus.killed,
        RunStatus.misfired,
        RunStatus.lost,
    }
)


def bounded_result(result: Any) -> Any:
    """The result as stored: JSON-able and at most ``MAX_RESULT_CHARS`` of JSON."""
    try:
        text = json.dumps(result, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(result))
    if len(text) <= MAX_RESULT_CHARS:
        return json.loads(text)
    return {"truncated": True, "chars": len(text), "head": text[:MAX_RESULT_CHARS]}


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

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def _view(row: ProcessRun) -> RunView:
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
        traceback=row.traceback,
        result=row.result,
        task_id=row.task_id,
        log=row.log,
    )


class RunStore:
    """Writes and reads run rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, **fields: Any) -> int:
        """Insert a run that no task carries yet (queued by the CLI, or misfired)."""
        with session_scope(self.engine) as session:
            row = ProcessRun(**fields)
            session.add(row)
            session.flush()
            return row.id

    def start(self, task_id: str, now: datetime, **fields: Any) -> int:
        """The run of ``task_id`` is processing (its queued row, if any, becomes it)."""
        return self._upsert(task_id, status=RunStatus.processing, started_at=now, **fields)

    def settle(self, task_id: str, status: RunStatus, now: datetime, **fields: Any) -> int:
        """The run of ``task_id`` ended without running (skipped, refused)."""
        return self._upsert(task_id, status=status, ended_at=now, **fields)

    def _upsert(self, task_id: str, **fields: Any) -> int:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ProcessRun).where(ProcessRun.task_id == task_id))
            if row is None:
                row = ProcessRun(task_id=task_id)
                session.add(row)
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return row.id

    def finish(self, run_id: int, status: RunStatus, now: datetime, **fields: Any) -> None:
        """Close a run with its outcome; the duration comes from its start."""
        with session_scope(self.engine) as session:
            row = session.get(ProcessRun, run_id)
            if row is None:
                raise NotFound("run", run_id)
            row.status = status
            row.ended_at = now
            if row.started_at is not None:
                row.duration_ms = int((now - row.started_at).total_seconds() * 1000)
            for name, value in fields.items():
                setattr(row, name, bounded_result(value) if name == "result" else value)

    def get(self, run_id: int) -> RunView:
        with session_scope(self.engine) as session:
            row = session.get(ProcessRun, run_id)
            if row is None:
                raise NotFound("run", run_id)
            return _view(row)

    def of_request(self, request_id: int) -> list[RunView]:
        """Every run of a request, oldest first."""
        query = (
            select(ProcessRun).where(ProcessRun.request_id == request_id).order_by(ProcessRun.id)
        )
        with session_scope(self.engine) as session:
            return [_view(row) for row in session.scalars(query)]
