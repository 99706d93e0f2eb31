"""The run store: one row per run, as the Process Monitor shows it (design §4). No Celery here.

Values are stored as given (the database is trusted like the request table); every
output masks secret parameters through the registry (:meth:`RunView.masked`). The
monitor's queries go through the store too: list (keyset pages) and the log read by
offset here; stats (:mod:`bgproc.store.stats`, by hour :mod:`bgproc.store.hourly`), pruning
(:mod:`bgproc.store.pruning`) and the runner's tickets (:mod:`bgproc.store.tickets`) in
modules of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Engine, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, defer

from bgproc.errors import InvalidInput, NotFound
from bgproc.progress import Progress
from bgproc.statuses import GROUP_LABEL_PREFIX, Channel, RunStatus
from bgproc.store.alerts import ALERTING, record_events
from bgproc.store.db import read_session, reading, session_scope, writing
from bgproc.store.hourly import HourCounts, HourDurations, hourly_counts, hourly_durations
from bgproc.store.models import ProcessGroup, ProcessRequest, ProcessRun, UtcDateTime
from bgproc.store.pruning import PRUNE_BATCH, Pruned, prune
from bgproc.store.retries import Retry, RetryBasis, fail_and_retry, retry_basis, stop_retries_of
from bgproc.store.runview import TERMINAL, RunView, filters, view_of
from bgproc.store.stats import ProcessStats, process_stats
from bgproc.store.tickets import Ticket, installation_key, read_ticket
from bgproc.store.transitions import NewRun, RunOutcome
from bgproc.timing.deadlines import Deadlines

EXPIRE_BATCH = 500  # late queued runs expired per sweep; the next sweep takes the rest
EXPIRED = "expired: not started by its start deadline (start_by)"
# What a run's deadlines are, from its request's process (or None) and own document
DeadlinesOf = Callable[[str | None, Any], Deadlines]

# A listing first filters the newest runs by primary key; only a filter that matches few of
# them falls back to the filter's index (which sorts every older match by id).
LIST_PROBE_RUNS = 10_000


@dataclass(frozen=True)
class LogChunk:
    """What a log grew by since ``offset`` (in characters), for ``monitor log --follow``."""

    text: str
    end: int  # the offset of the next read
    finished: bool  # the run has ended: its log is complete
    restarted: bool = False  # the log got shorter than the offset: ``text`` is all of it
    progress: Progress | None = None  # the run's latest report, read with the text


class RunStore:
    """Writes and reads run rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, run: NewRun) -> int:
        """Insert a run that no task carries yet (queued by the CLI, or misfired)."""
        with session_scope(self.engine) as session:
            row = run.row()
            session.add(row)
            session.flush()
            if run.status in ALERTING:  # a misfire, a message refused unread: alerts too
                record_events(session.connection(), [row.id])
            return row.id

    def forget(self, run_id: int) -> None:
        """Delete a run that was never sent (its publish failed): nothing half-done is left."""
        with session_scope(self.engine) as session:
            session.execute(delete(ProcessRun).where(ProcessRun.id == run_id))

    def queue_fire(
        self,
        request_id: int,
        task_id: str,
        scheduled_at: datetime | None,
        now: datetime,
        deadlines: DeadlinesOf | None = None,
    ) -> tuple[int, str] | None:
        """Beat, before it publishes a fire: the request's queued run and its process (or
        ``group:NAME``), in one INSERT … SELECT (None if the request is gone). On PostgreSQL
        the commit does not wait for the disk: a row lost in a crash is made again by the
        worker (:meth:`open_for_request`). With ``deadlines`` (the registry's
        :meth:`~bgproc.registry.Registry.deadlines_of`), the request's start deadline is read
        first in the same transaction (one primary-key read) and the run gets its
        ``start_by``: its due time plus that deadline."""
        run, request, group = ProcessRun.__table__, ProcessRequest.__table__, ProcessGroup.__table__
        label = func.coalesce(request.c.process, literal(GROUP_LABEL_PREFIX).concat(group.c.name))
        source = select(
            request.c.id,
            label,
            request.c.params,
            literal(RunStatus.queued.value),
            literal(Channel.scheduler.value),
            literal(scheduled_at, UtcDateTime()),
            literal(now, UtcDateTime()),
            literal(task_id),
        ).select_from(request.outerjoin(group)).where(request.c.id == request_id)
        columns = ["request_id", "process", "params", "status", "channel", "scheduled_at",
                   "queued_at", "task_id"]
        with writing(self.engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            if deadlines is not None:
                own = connection.execute(
                    select(request.c.process, request.c.deadlines).where(
                        request.c.id == request_id
                    )
                ).one_or_none()
                seconds = deadlines(own[0], own[1]).start_deadline_s if own else None
                if seconds is not None:
                    start_by = (scheduled_at or now) + timedelta(seconds=seconds)
                    source = source.add_columns(literal(start_by, UtcDateTime()))
                    columns = [*columns, "start_by"]
            found = connection.execute(
                insert(run).from_select(columns, source).returning(run.c.id, run.c.process)
            ).one_or_none()
            return (found[0], found[1]) if found is not None else None

    @cached_property
    def ticket_key(self) -> str | None:
        """The installation's key (:mod:`bgproc.store.tickets`), read once."""
        return installation_key(self.engine)

    def ticket(self, run_id: int) -> Ticket | None:
        """The run and its request's flags, read without taking any write lock."""
        return read_ticket(self.engine, run_id)

    def open_for_request(
        self,
        task_id: str,
        request_id: int,
        scheduled_at: datetime | None,
        now: datetime,
        deadlines: DeadlinesOf | None = None,
    ) -> int | None:
        """The run of a message that names only its request (queued now, or found again
        on redelivery); None if the request is gone."""
        with reading(self.engine) as connection:
            found = connection.scalar(select(ProcessRun.id).where(ProcessRun.task_id == task_id))
        if found is not None:
            return found
        queued = self.queue_fire(request_id, task_id, scheduled_at, now, deadlines)
        return queued[0] if queued is not None else None

    def close_open(
        self,
        run_id: int | None,
        task_id: str,
        status: RunStatus,
        now: datetime,
        why: str,
        open_statuses: Collection[RunStatus] = (RunStatus.queued, RunStatus.processing),
    ) -> None:
        """End a run that is still open (its worker could not): by id, else by task id. A
        run that has ended meanwhile (or, with ``open_statuses``, started) is left as it is."""
        which = ProcessRun.id == run_id if run_id is not None else ProcessRun.task_id == task_id
        with session_scope(self.engine) as session:
            row = session.scalar(select(ProcessRun).where(which))
            if row is None or row.status not in open_statuses:
                return
            row.status, row.ended_at, row.error = status, now, why
            if row.started_at is not None:
                row.duration_ms = int((now - row.started_at).total_seconds() * 1000)
            session.flush()
            record_events(session.connection(), [row.id])

    def claim_start(
        self, run_id: int, status: RunStatus, attempt: int, new_attempt: int, worker: str
    ) -> bool:
        """Move the run from ``status`` at ``attempt`` to ``processing`` at ``new_attempt``,
        if it is still there: of two copies of one message, only one succeeds."""
        claim = (
            update(ProcessRun)
            .where(
                ProcessRun.id == run_id,
                ProcessRun.status == status,
                ProcessRun.attempt == attempt,
            )
            .values(status=RunStatus.processing, attempt=new_attempt, worker=worker)
        )
        with writing(self.engine) as connection:
            return connection.execute(claim).rowcount == 1

    def claim_in_time(
        self, run_id: int, attempt: int, new_attempt: int, worker: str, now: datetime
    ) -> bool | None:
        """Start a queued run that has a start deadline, if it is still queued and in time:
        True. One that was too late is ended ``expired`` here: False. None: someone else
        moved it first (a twin's start, the expiry sweep). Each is one conditional UPDATE,
        so a start and an expiry racing have exactly one winner."""
        queued = (ProcessRun.id == run_id, ProcessRun.status == RunStatus.queued)
        claim = (
            update(ProcessRun)
            .where(*queued, ProcessRun.attempt == attempt, ProcessRun.start_by >= now)
            .values(status=RunStatus.processing, attempt=new_attempt, worker=worker,
                    started_at=now)
        )  # fmt: skip
        expire = (
            update(ProcessRun)
            .where(*queued, ProcessRun.start_by < now)
            .values(status=RunStatus.expired, ended_at=now, worker=worker,
                    error=f"{EXPIRED}; {worker} took it too late")
        )  # fmt: skip
        with writing(self.engine) as connection:
            if connection.execute(claim).rowcount == 1:
                return True
            if connection.execute(expire).rowcount != 1:
                return None
            record_events(connection, [run_id])
            return False

    def expire_late(self, now: datetime, limit: int = EXPIRE_BATCH) -> list[int]:
        """End ``expired`` the queued runs whose start deadline has passed (the oldest
        ``limit`` of them: one range of the (status, start_by) index); their ids. A worker
        that takes one of their messages later finds it ended and drops it."""
        late = (ProcessRun.status == RunStatus.queued, ProcessRun.start_by < now)
        with writing(self.engine) as connection:
            ids = list(connection.scalars(
                select(ProcessRun.id).where(*late).order_by(ProcessRun.start_by).limit(limit)
            ))  # fmt: skip
            if not ids:
                return []
            error = f"{EXPIRED}; no worker took it in time"
            expired = connection.scalars(
                update(ProcessRun)
                .where(ProcessRun.id.in_(ids), *late)
                .values(status=RunStatus.expired, ended_at=now, error=error)
                .returning(ProcessRun.id)
            )
            expired_ids = sorted(expired)
            record_events(connection, expired_ids)
            return expired_ids

    # -- retries (:mod:`bgproc.store.retries`) ---------------------------------------------

    def retry_basis(self, run_id: int) -> RetryBasis | None:
        return retry_basis(self.engine, run_id)

    def fail_and_retry(self, outcome: RunOutcome, retry: Retry, now: datetime) -> int | None:
        """End the attempt and queue its retry, together (None: the attempt was not ours)."""
        return fail_and_retry(self.engine, outcome, retry, now)

    def stop_retry(self, run_id: int, status: RunStatus, why: str, now: datetime) -> bool:
        """End the retry ``run_id`` if it still waits (a kill, a message not sent)."""
        return bool(stop_retries_of(self.engine, ProcessRun.id == run_id, status, why, now))

    def queued_before(self, before: datetime, limit: int) -> list[tuple[int, str]]:
        """(id, task id) of the oldest runs still queued since before ``before``."""
        query = (
            select(ProcessRun.id, ProcessRun.task_id)
            .where(
                ProcessRun.status == RunStatus.queued,
                ProcessRun.queued_at < before,
                ProcessRun.task_id.is_not(None),
            )
            .order_by(ProcessRun.id)
            .limit(limit)
        )
        with reading(self.engine) as connection:
            return [(row[0], row[1]) for row in connection.execute(query)]

    def get(self, run_id: int) -> RunView:
        with read_session(self.engine) as session:
            row = session.get(ProcessRun, run_id)
            if row is None:
                raise NotFound("run", run_id)
            return view_of(row)

    def of_request(self, request_id: int) -> list[RunView]:
        """Every run of a request, oldest first."""
        query = (
            select(ProcessRun).where(ProcessRun.request_id == request_id).order_by(ProcessRun.id)
        )
        with read_session(self.engine) as session:
            return [view_of(row) for row in session.scalars(query)]

    def steps(self, group_run_id: int) -> list[RunView]:
        """The step runs of a group run, in the order they ran (without their logs)."""
        query = (
            select(ProcessRun)
            .where(ProcessRun.group_run_id == group_run_id)
            .order_by(ProcessRun.id)
        )
        with read_session(self.engine) as session:
            return [view_of(row, full=False) for row in session.scalars(query)]

    # -- the Process Monitor's queries --------------------------------------------

    def list(
        self,
        process: str | None = None,
        status: RunStatus | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        before_id: int | None = None,
        *,
        probe_runs: int = LIST_PROBE_RUNS,
    ) -> list[RunView]:
        """Runs matching every filter, newest (highest id) first; ``before_id`` pages on.

        Keyset paging, so a page costs the same however deep it is. The views leave out
        the log, traceback and result (``get`` has them): a page of logs could be megabytes.
        """
        if limit < 1:
            raise InvalidInput("limit", f"must be at least 1 (got {limit})")
        table = ProcessRun.__table__
        wanted = {
            "process": process,
            "status": status,
            "request_id": request_id,
            "since": since,
            "until": until,
        }
        below = [table.c.id < before_id] if before_id is not None else []
        with read_session(self.engine) as session:
            # The newest runs by primary key first: a filter that matches many of them is
            # answered here without sorting all its matches (the indexes are not by id).
            window = (
                select(
                    table.c.id,
                    table.c.process,
                    table.c.status,
                    table.c.request_id,
                    table.c.started_at,
                    table.c.queued_at,
                    table.c.scheduled_at,
                    table.c.ended_at,
                )
                .where(*below)
                .order_by(table.c.id.desc())
                .limit(probe_runs)
                .subquery()
            )
            ids = list(
                session.scalars(
                    select(window.c.id)
                    .where(*filters(window.c, **wanted))
                    .order_by(window.c.id.desc())
                    .limit(limit)
                )
            )
            if len(ids) < limit:
                scanned, lowest = session.execute(
                    select(func.count(), func.min(window.c.id)).select_from(window)
                ).one()
                if scanned == probe_runs:  # older runs exist: the filter's index finds them
                    ids += session.scalars(
                        select(table.c.id)
                        .where(table.c.id < lowest, *filters(table.c, **wanted))
                        .order_by(table.c.id.desc())
                        .limit(limit - len(ids))
                    )
            if not ids:
                return []
            rows = session.scalars(
                select(ProcessRun)
                .where(ProcessRun.id.in_(ids))
                .order_by(ProcessRun.id.desc())
                .options(
                    defer(ProcessRun.log, raiseload=True),
                    defer(ProcessRun.traceback, raiseload=True),
                    defer(ProcessRun.result, raiseload=True),
                )
            )
            return [view_of(row, full=False) for row in rows]

    def stats(
        self, process: str | None = None, since: datetime | None = None
    ) -> list[ProcessStats]:
        """Per process: counts by status, success rate, p50/p95/max duration, last run."""
        return process_stats(self.engine, process, since)

    def hourly_counts(
        self, since: datetime, until: datetime, process: str | None = None
    ) -> list[HourCounts]:
        """Runs per UTC hour and status in ``[since, until)``, every hour of it."""
        return hourly_counts(self.engine, since, until, process)

    def hourly_durations(
        self, process: str, since: datetime, until: datetime
    ) -> list[HourDurations]:
        """``process``'s p50 and max duration per UTC hour in ``[since, until)``."""
        return hourly_durations(self.engine, process, since, until)

    def read_log(self, run_id: int, offset: int = 0) -> LogChunk:
        """The log from character ``offset`` on, cut in the database: following a growing
        log reads only what is new, and the finished flag comes from the same snapshot."""
        with read_session(self.engine) as session:
            chunk = _log_chunk(session, run_id, offset)
        if chunk is None:
            raise NotFound("run", run_id)
        return chunk

    def read_logs(self, wanted: Mapping[int, Collection[int]]) -> dict[tuple[int, int], LogChunk]:
        """What each run's log grew by since each of its offsets, as :meth:`read_log` for
        every ``(run, offset)``; one query gives every run's length, status and progress,
        and only the logs that changed are read again, so a web server following many
        logs makes a few queries per tick, not one per follower. A run missing is left out."""
        columns = ProcessRun.__table__.c
        chunks: dict[tuple[int, int], LogChunk] = {}
        with read_session(self.engine) as session:
            states = session.execute(
                select(
                    columns.id,
                    func.coalesce(func.length(columns.log), 0),
                    columns.status,
                    columns.progress,
                ).where(columns.id.in_(list(wanted)))
            ).all()
            for number, length, status, progress in states:
                for offset in wanted[number]:
                    if length == max(offset, 0):
                        shown = None if progress is None else Progress.from_json(progress)
                        chunks[number, offset] = LogChunk(
                            "", length, status in TERMINAL, False, shown
                        )
                    elif (chunk := _log_chunk(session, number, offset)) is not None:
                        chunks[number, offset] = chunk
        return chunks

    def prune(
        self,
        *,
        now: datetime,
        older_than: timedelta | None = None,
        batch_size: int = PRUNE_BATCH,
        dry_run: bool = False,
    ) -> Pruned:
        """Forget old history as Etendo's clean-up does (:mod:`bgproc.store.pruning`)."""
        return prune(
            self.engine, now=now, older_than=older_than, batch_size=batch_size, dry_run=dry_run
        )


def _log_chunk(session: Session, run_id: int, offset: int) -> LogChunk | None:
    """:meth:`RunStore.read_log` in ``session``: ``None`` when there is no such run."""
    columns = ProcessRun.__table__.c
    start = max(offset, 0)
    for restarted in (False, True):
        row = session.execute(
            select(
                func.coalesce(func.length(columns.log), 0),
                func.substr(columns.log, start + 1),
                columns.status,
                columns.progress,
            ).where(columns.id == run_id)
        ).one_or_none()
        if row is None:
            return None
        length, text, status, progress = row
        if length >= start:
            text = text or ""
            progress = None if progress is None else Progress.from_json(progress)
            return LogChunk(text, start + len(text), status in TERMINAL, restarted, progress)
        start = 0  # rewritten shorter than what was read: start over
    raise AssertionError("unreachable: a log cannot be shorter than 0")
