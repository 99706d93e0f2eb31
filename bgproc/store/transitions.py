"""A run's changes as typed values: a new row, a start, and the two ways an attempt ends.

The run store (:meth:`~bgproc.store.runs.RunStore.record`) and the worker's recorder
(:class:`~bgproc.runtime.recorder.RunRecorder`) take these, never loose column names: a
misspelt field fails where the value is made, not as a silent column. Each says which
columns it sets (``columns``), so the recorder still merges one run's changes into one
UPDATE per batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date, datetime, time
from typing import Any

from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun

MAX_RESULT_CHARS = 64_000  # a result is a summary; a bigger one is cut, visibly


def bounded_result(result: Any) -> Any:
    """The result as stored: JSON-able and at most ``MAX_RESULT_CHARS`` of JSON. A value
    JSON has no type for is its text; a result JSON cannot hold at all, its repr."""
    if result is None:  # most processes return nothing
        return None
    try:
        text = json.dumps(result, default=_as_text)
    except (TypeError, ValueError):  # keys JSON cannot hold, or a cycle
        text = json.dumps(repr(result))
    if len(text) <= MAX_RESULT_CHARS:
        return json.loads(text)
    return {"truncated": True, "chars": len(text), "head": text[:MAX_RESULT_CHARS]}


def _as_text(value: Any) -> str:
    """A value inside a result that JSON has no type for: dates and times as ISO 8601 (as
    every --json shows them), anything else as its text."""
    return value.isoformat() if isinstance(value, date | time) else str(value)


@dataclass(frozen=True)
class NewRun:
    """A run row that no task carries yet: queued by ``bgproc run`` or a group, misfired,
    or a message refused unread. Every column but the id; what is not given stays empty."""

    process: str
    params: dict[str, Any]
    status: RunStatus
    channel: Channel
    request_id: int | None = None
    group_run_id: int | None = None
    task_id: str | None = None
    scheduled_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    worker: str | None = None
    attempt: int = 1
    log: str | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None  # as stored (:func:`bounded_result`)
    start_by: datetime | None = None  # queued with a start deadline: it expires after

    def row(self) -> ProcessRun:
        """The row to add to a session; a value not given takes the column's default."""
        given = {field.name: getattr(self, field.name) for field in fields(self)}
        return ProcessRun(**{name: value for name, value in given.items() if value is not None})


@dataclass(frozen=True)
class RunStart:
    """A worker starts an attempt of a run: it is ``processing`` there from now."""

    run_id: int
    attempt: int
    worker: str
    started_at: datetime

    def columns(self) -> dict[str, Any]:
        return {
            "status": RunStatus.processing,
            "started_at": self.started_at,
            "worker": self.worker,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class RunOutcome:
    """How an attempt that ran ended: its final status and what the process left."""

    run_id: int
    attempt: int
    status: RunStatus
    ended_at: datetime
    duration_ms: int | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None  # as stored (:func:`bounded_result`)

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
            "result": self.result,
            "error": self.error,
            "traceback": self.traceback,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class RunRefusal:
    """An attempt its worker ended without running it (its request gone, its process
    unknown, another run holding its lease): no start named the worker, so this does."""

    run_id: int
    attempt: int
    status: RunStatus
    ended_at: datetime
    worker: str
    error: str

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ended_at": self.ended_at,
            "worker": self.worker,
            "error": self.error,
            "attempt": self.attempt,
        }


RunEnd = RunOutcome | RunRefusal  # what :meth:`RunRecorder.ended` takes
