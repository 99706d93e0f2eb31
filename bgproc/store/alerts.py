"""The alert outbox (``bgproc_alert``): events written with their status change, claimed
by one notifier at a time with a lease, marked sent.

:func:`record_events` runs inside the transaction that ends a run, so an event is stored
exactly when its status is; the unique (run_id, event) key makes racing writers (two
beats, a sweep and a worker) store it once. Claims are one conditional UPDATE each (the
same on SQLite and PostgreSQL): of notifiers racing for a row, one wins; a row whose
notifier died is claimed again once its lease is over, so delivery is at least once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, literal, or_, select, update

from bgproc.errors import NotFound
from bgproc.statuses import RunStatus
from bgproc.store.db import reading, writing
from bgproc.store.models import AlertEvent, ProcessRequest, ProcessRun, UtcDateTime
from bgproc.timing.walltime import utc_now

# The statuses that alert: the run's end is its event
ALERTING = (RunStatus.error, RunStatus.lost, RunStatus.misfired, RunStatus.expired)
CLAIM_BATCH = 20  # rows a notifier takes per round; the next round takes more
_ALERT, _RUN, _REQUEST = AlertEvent.__table__, ProcessRun.__table__, ProcessRequest.__table__


def record_events(connection: Connection, run_ids: Collection[int]) -> None:
    """In the caller's transaction: an event for each of ``run_ids`` that now ends in an
    alerting status, once (a row already there is kept). Not for an error whose retry is
    queued (the retry's own end alerts), nor for a group's steps (the group's run does)."""
    if not run_ids:
        return
    now = literal(utc_now(), UtcDateTime())
    source = select(_RUN.c.id, _RUN.c.status, _RUN.c.request_id, now, now).where(
        _RUN.c.id.in_(list(run_ids)),
        _RUN.c.status.in_([status.value for status in ALERTING]),
        _RUN.c.retry_run_id.is_(None),
        _RUN.c.group_run_id.is_(None),
    )
    # the backend's own INSERT … ON CONFLICT, imported when used: a SQLite installation never
    # loads PostgreSQL's dialect (it costs every command ~20 ms)
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    connection.execute(
        dialect_insert(_ALERT)
        .from_select(["run_id", "event", "request_id", "created_at", "due_at"], source)
        .on_conflict_do_nothing(index_elements=["run_id", "event"])
    )


@dataclass(frozen=True)
class Claimed:
    """An outbox row this notifier holds until ``until``: what to send, and what was sent."""

    id: int
    run_id: int
    event: str
    request_id: int | None
    tries: int
    delivered: frozenset[str]
    claim: str
    until: datetime


def claim_due(engine: Engine, now: datetime, lease_s: float, limit: int = CLAIM_BATCH
              ) -> list[Claimed]:  # fmt: skip
    """Claim up to ``limit`` unsent rows that are due and held by no live lease."""
    free = (
        _ALERT.c.sent_at.is_(None),
        _ALERT.c.due_at <= now,
        or_(_ALERT.c.claimed_until.is_(None), _ALERT.c.claimed_until < now),
    )
    until = now + timedelta(seconds=lease_s)
    token = uuid.uuid4().hex
    with reading(engine) as connection:
        ids = list(connection.scalars(
            select(_ALERT.c.id).where(*free).order_by(_ALERT.c.due_at).limit(limit)
        ))  # fmt: skip
    if not ids:
        return []
    with writing(engine) as connection:
        rows = connection.execute(
            update(_ALERT)
            .where(_ALERT.c.id.in_(ids), *free)
            .values(claimed_until=until, claim=token)
            .returning(_ALERT.c.id, _ALERT.c.run_id, _ALERT.c.event, _ALERT.c.request_id,
                       _ALERT.c.tries, _ALERT.c.delivered)
        ).all()  # fmt: skip
    return [
        Claimed(row[0], row[1], row[2], row[3], row[4],
                frozenset(filter(None, (row[5] or "").split(","))), token, until)
        for row in sorted(rows)
    ]  # fmt: skip


def mark_sent(engine: Engine, claimed: Claimed, now: datetime) -> bool:
    """The row is delivered (if this notifier still holds it; else another one sends it)."""
    with writing(engine) as connection:
        return connection.execute(
            update(_ALERT)
            .where(_ALERT.c.id == claimed.id, _ALERT.c.claim == claimed.claim,
                   _ALERT.c.sent_at.is_(None))
            .values(sent_at=now, claimed_until=None, tries=claimed.tries + 1, last_error=None)
        ).rowcount == 1  # fmt: skip


def mark_failed(
    engine: Engine, claimed: Claimed, delivered: Collection[str], due_at: datetime, error: str
) -> None:
    """A try failed: its channels that did go through are kept, the row is due again then."""
    with writing(engine) as connection:
        connection.execute(
            update(_ALERT)
            .where(_ALERT.c.id == claimed.id, _ALERT.c.claim == claimed.claim)
            .values(due_at=due_at, claimed_until=None, tries=claimed.tries + 1,
                    delivered=",".join(sorted(delivered)) or None, last_error=error[:2000])
        )  # fmt: skip


def alert_subject(engine: Engine, run_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What an alert about ``run_id`` tells (its run's columns, JSON-able) and its request's
    own targets document (None: none set, or no request); a pruned run tells its id only."""
    query = (
        select(_RUN.c.id, _RUN.c.request_id, _RUN.c.process, _RUN.c.status, _RUN.c.error,
               _RUN.c.scheduled_at, _RUN.c.ended_at, _RUN.c.worker, _RUN.c.attempt,
               _REQUEST.c.alerts)
        .select_from(_RUN.outerjoin(_REQUEST))
        .where(_RUN.c.id == run_id)
    )  # fmt: skip
    with reading(engine) as connection:
        row = connection.execute(query).one_or_none()
    if row is None:
        return {"id": run_id}, None
    run = dict(row._mapping)
    targets = run.pop("alerts")
    for key in ("scheduled_at", "ended_at"):
        run[key] = run[key].isoformat() if run[key] is not None else None
    run["status"] = str(run["status"])
    return run, targets


def request_targets(engine: Engine, request_id: int) -> tuple[str | None, dict[str, Any] | None]:
    """A request's process (None for a group) and own targets document, for an alert test."""
    with reading(engine) as connection:
        row = connection.execute(
            select(_REQUEST.c.process, _REQUEST.c.alerts).where(_REQUEST.c.id == request_id)
        ).one_or_none()
    if row is None:
        raise NotFound("request", request_id)
    return row[0], row[1]
