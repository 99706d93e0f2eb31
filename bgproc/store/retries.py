"""Retries in the run table: a failed attempt and its retry, written together; pending
retries stopped (an unschedule, a kill, a retry that could not be sent).

A retry is a run of its own, ``queued`` until it is due (its ``scheduled_at``), linked
to the first attempt of its fire (``first_run_id``) and numbered (``try_number`` of
``max_tries``); the attempt it retries points at it (``retry_run_id``, and ``retry_at``
while it waits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from bgproc.statuses import RunStatus
from bgproc.store.db import reading, session_scope
from bgproc.store.models import ProcessRequest, ProcessRun, UtcDateTime
from bgproc.store.transitions import RunOutcome

OPEN = (RunStatus.queued, RunStatus.processing)  # as the recorder: what a worker may end
_RUN, _REQUEST = ProcessRun.__table__, ProcessRequest.__table__


@dataclass(frozen=True)
class RetryBasis:
    """What deciding on a retry needs of a failed run: its place among its fire's
    attempts, and its request's policy and flag (none for an ad-hoc run)."""

    try_number: int
    first_run_id: int | None
    request_retry: dict[str, Any] | None
    request_prevent_concurrent: bool


@dataclass(frozen=True)
class Retry:
    """The next attempt of a failed run: its message's task id, when it is due, its number."""

    task_id: str
    due_at: datetime
    try_number: int
    max_tries: int
    first_run_id: int
    start_by: datetime | None = None  # its own start deadline, counted from its due time


def retry_basis(engine: Engine, run_id: int) -> RetryBasis | None:
    """The basis of run ``run_id``'s retry (one read, only after an error); None if gone."""
    query = (
        select(_RUN.c.try_number, _RUN.c.first_run_id, _REQUEST.c.retry,
               _REQUEST.c.prevent_concurrent)
        .select_from(_RUN.outerjoin(_REQUEST))
        .where(_RUN.c.id == run_id)
    )  # fmt: skip
    with reading(engine) as connection:
        row = connection.execute(query).one_or_none()
    if row is None:
        return None
    return RetryBasis(row[0], row[1], row[2], bool(row[3]))


def fail_and_retry(engine: Engine, outcome: RunOutcome, retry: Retry, now: datetime) -> int | None:
    """In one transaction, the attempt ends as ``outcome`` says and its retry is queued:
    the retry's run id. None, and nothing written, when the attempt was no longer this
    worker's to end (the sweeper called it lost meanwhile): exactly one retry per failure."""
    with session_scope(engine) as session:
        ended = session.execute(
            update(ProcessRun)
            .where(
                ProcessRun.id == outcome.run_id,
                ProcessRun.retry_run_id.is_(None),
                or_(ProcessRun.status.in_(OPEN), ProcessRun.attempt < outcome.attempt),
            )
            .values(**outcome.columns(), max_tries=retry.max_tries, retry_at=retry.due_at)
        )
        if ended.rowcount != 1:
            return None
        copied = select(
            _RUN.c.request_id,
            _RUN.c.process,
            _RUN.c.params,
            _RUN.c.channel,
            literal(RunStatus.queued.value),
            literal(retry.due_at, UtcDateTime()),
            literal(now, UtcDateTime()),
            literal(retry.task_id),
            literal(retry.first_run_id),
            literal(retry.try_number),
            literal(retry.max_tries),
            literal(retry.start_by, UtcDateTime()),
        ).where(_RUN.c.id == outcome.run_id)
        columns = ["request_id", "process", "params", "channel", "status", "scheduled_at",
                   "queued_at", "task_id", "first_run_id", "try_number", "max_tries",
                   "start_by"]  # fmt: skip
        retry_id = session.execute(
            insert(_RUN).from_select(columns, copied).returning(_RUN.c.id)
        ).scalar_one()
        session.execute(
            update(ProcessRun).where(ProcessRun.id == outcome.run_id).values(retry_run_id=retry_id)
        )
        return int(retry_id)


def stop_retries(
    session: Session, which: ColumnElement[bool], status: RunStatus, why: str, now: datetime
) -> list[int]:
    """End the retries still waiting among the runs ``which`` selects, and clear the
    "retrying at" of the attempts they retried; their ids. Their messages, when due,
    find them ended and are dropped."""
    waiting = list(
        session.scalars(
            select(ProcessRun.id).where(
                which, ProcessRun.status == RunStatus.queued, ProcessRun.first_run_id.is_not(None)
            )
        )
    )
    if waiting:
        session.execute(
            update(ProcessRun)
            .where(ProcessRun.id.in_(waiting), ProcessRun.status == RunStatus.queued)
            .values(status=status, ended_at=now, error=why)
        )
        session.execute(
            update(ProcessRun).where(ProcessRun.retry_run_id.in_(waiting)).values(retry_at=None)
        )
    return waiting


def stop_retries_of(
    engine: Engine, which: ColumnElement[bool], status: RunStatus, why: str, now: datetime
) -> list[int]:
    """:func:`stop_retries` in a transaction of its own."""
    with session_scope(engine) as session:
        return stop_retries(session, which, status, why, now)
