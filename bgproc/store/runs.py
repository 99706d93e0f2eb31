"""The run store: one row per run, as the Process Monitor shows it (design §4). No Celery here.

Values are stored as given (the database is trusted like the request table);
every output masks secret parameters through the registry (:meth:`RunView.masked`).
The monitor's queries live here too: list (keyset pages), stats, the log read by
offset, and Etendo-style pruning in short batches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import type_coerce as as_type
from sqlalchemy.orm import Session, defer

from bgproc.errors import InvalidInput, NotFound
from bgproc.registry import Registry
from bgproc.statuses import GROUP_LABEL_PREFIX, Channel, RequestStatus, RunStatus
from bgproc.store.db import read_row, read_session, reading, session_scope, writing
from bgproc.store.models import (
    InstallationKey,
    ProcessGroup,
    ProcessRequest,
    ProcessRun,
    UtcDateTime,
)

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
# Finished without running (a fire missed, or refused while another ran): counted apart,
# never a failure of the process.
NEVER_RAN = frozenset({RunStatus.skipped, RunStatus.misfired})
# Etendo's clean-up defaults: successes go after 15 days, other finished runs after 30,
# complete requests 15 days after their last change.
KEEP_SUCCESS = timedelta(days=15)
KEEP_FINISHED = timedelta(days=30)
KEEP_COMPLETE_REQUEST = timedelta(days=15)
PRUNE_BATCH = 5000  # runs per transaction: pruning never holds the write lock for long
PRUNE_REQUEST_BATCH = 100  # each deleted request also un-links its runs (FK SET NULL)
# A listing first filters the newest runs by primary key; only a filter that matches few of
# them falls back to the filter's index (which sorts every older match by id).
LIST_PROBE_RUNS = 10_000
PERCENTILES = (0.5, 0.95)


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


def _iso(instant: datetime | None) -> str | None:
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
            "scheduled_at": _iso(self.scheduled_at),
            "queued_at": _iso(self.queued_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_ms": self.duration_ms,
            "worker": self.worker,
            "attempt": self.attempt,
            "error": self.error,
            "task_id": self.task_id,
        }
        if full:
            data.update(traceback=self.traceback, result=self.result, log=self.log)
        return data


@dataclass(frozen=True)
class Ticket:
    """What the runner reads of a run before it starts it (one query, run and request)."""

    run_id: int
    status: RunStatus
    attempt: int
    process: str
    params: dict[str, Any]
    channel: Channel
    request_id: int | None
    request_status: RequestStatus | None  # None: no request (ad-hoc run, or deleted)
    request_prevent_concurrent: bool
    request_group_id: int | None  # the request names a group
    group_run_id: int | None  # this run is a step of that group run

    @property
    def is_group_run(self) -> bool:
        """The parent run of a group fire (its steps are runs of their own)."""
        return self.request_group_id is not None and self.group_run_id is None

    @classmethod
    def of_ad_hoc(cls, run_id: int, carried: Any, key: str | None) -> Ticket | None:
        """The ticket of a just-queued ad-hoc run, from what its message carries
        (:func:`ad_hoc_ticket`); None if it carries none, a malformed one, or one that
        ``key`` did not sign (written by someone who can reach Redis, not the database)."""
        if key is None or not isinstance(carried, dict):
            return None
        process, params, signature = (carried.get(k) for k in ("process", "params", "sig"))
        if not (isinstance(process, str) and isinstance(params, dict)):
            return None
        if not isinstance(signature, str) or not hmac.compare_digest(
            signature, _signature(key, run_id, process, params)
        ):
            return None
        return cls(run_id, RunStatus.queued, 1, process, params, Channel.direct, None, None,
                   False, None, None)  # fmt: skip


def ad_hoc_ticket(key: str, run_id: int, process: str, params: dict[str, Any]) -> dict[str, Any]:
    """What an ad-hoc run's message carries so that its worker needs no read to start it:
    its process and parameters (never secret ones: the caller leaves it out then), signed
    with the installation's key."""
    return {"process": process, "params": params, "sig": _signature(key, run_id, process, params)}


def _signature(key: str, run_id: int, process: str, params: dict[str, Any]) -> str:
    signed = json.dumps([run_id, process, params], sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest()


_RUN, _REQUEST = ProcessRun.__table__, ProcessRequest.__table__
# Built once: the runner reads a ticket per run, and building a select costs more than
# running it. Columns in the order Ticket's fields read them.
TICKET_QUERY = (
    select(
        _RUN.c.id,
        _RUN.c.status,
        _RUN.c.attempt,
        _RUN.c.process,
        _RUN.c.params,
        _RUN.c.channel,
        _RUN.c.request_id,
        _REQUEST.c.status,
        _REQUEST.c.prevent_concurrent,
        _REQUEST.c.group_id,
        _RUN.c.group_run_id,
    )
    .select_from(_RUN.outerjoin(_REQUEST))
    .where(_RUN.c.id == bindparam("run_id"))
)


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
            "last_run_at": _iso(self.last_run_at),
        }


@dataclass(frozen=True)
class LogChunk:
    """What a log grew by since ``offset`` (in characters), for ``monitor log --follow``."""

    text: str
    end: int  # the offset of the next read
    finished: bool  # the run has ended: its log is complete
    restarted: bool = False  # the log got shorter than the offset: ``text`` is all of it


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


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """``percentile_cont(q)`` of ascending values: interpolated between the closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _happened(
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


def _prunable(
    columns: Any, statuses: Collection[RunStatus], before: datetime
) -> list[ColumnElement[bool]]:
    """Top-level runs that ended in ``statuses`` and happened before ``before``: what a prune
    deletes (a group's children go with their group)."""
    return [
        columns.status.in_(statuses),
        columns.group_run_id.is_(None),
        *_happened(columns, None, before),
    ]


def _old_requests(columns: Any, before: datetime) -> list[ColumnElement[bool]]:
    """Complete requests untouched since ``before``: what a prune deletes."""
    return [columns.status == RequestStatus.complete, columns.updated_at < before]


def _filters(
    columns: Any,
    process: str | None = None,
    status: RunStatus | None = None,
    request_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """The WHERE terms of the monitor's filters, on a table's or a subquery's columns."""
    terms = _happened(columns, since, until)
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


def _view(row: ProcessRun, full: bool = True) -> RunView:
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
    )


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
    where = _filters(columns, since=since)
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

    def forget(self, run_id: int) -> None:
        """Delete a run that was never sent (its publish failed): nothing half-done is left."""
        with session_scope(self.engine) as session:
            session.execute(delete(ProcessRun).where(ProcessRun.id == run_id))

    def queue_fire(
        self, request_id: int, task_id: str, scheduled_at: datetime | None, now: datetime
    ) -> tuple[int, str] | None:
        """Beat, before it publishes a fire: the request's queued run and its process (or
        ``group:NAME``), in one INSERT … SELECT (None if the request is gone). On PostgreSQL
        the commit does not wait for the disk: a row lost in a crash is made again by the
        worker (:meth:`open_for_request`)."""
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
            found = connection.execute(
                insert(run).from_select(columns, source).returning(run.c.id, run.c.process)
            ).one_or_none()
            return (found[0], found[1]) if found is not None else None

    @cached_property
    def ticket_key(self) -> str | None:
        """The installation's key (:class:`~bgproc.store.models.InstallationKey`), read once."""
        with reading(self.engine) as connection:
            return connection.scalar(select(InstallationKey.key).where(InstallationKey.id == 1))

    def ticket(self, run_id: int) -> Ticket | None:
        """The run and its request's flags, read without taking any write lock."""
        row = read_row(self.engine, TICKET_QUERY, {"run_id": run_id})
        if row is None:
            return None
        params = row[4] or {}
        return Ticket(
            run_id=row[0],
            status=RunStatus(row[1]),
            attempt=row[2],
            process=row[3],
            params=json.loads(params) if isinstance(params, str) else dict(params),
            channel=Channel(row[5]),
            request_id=row[6],
            request_status=RequestStatus(row[7]) if row[7] is not None else None,
            request_prevent_concurrent=bool(row[8]),
            request_group_id=row[9],
            group_run_id=row[10],
        )

    def open_for_request(
        self, task_id: str, request_id: int, scheduled_at: datetime | None, now: datetime
    ) -> int | None:
        """The run of a message that names only its request (queued now, or found again
        on redelivery); None if the request is gone."""
        with reading(self.engine) as connection:
            found = connection.scalar(select(ProcessRun.id).where(ProcessRun.task_id == task_id))
        if found is not None:
            return found
        queued = self.queue_fire(request_id, task_id, scheduled_at, now)
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
            return _view(row)

    def of_request(self, request_id: int) -> list[RunView]:
        """Every run of a request, oldest first."""
        query = (
            select(ProcessRun).where(ProcessRun.request_id == request_id).order_by(ProcessRun.id)
        )
        with read_session(self.engine) as session:
            return [_view(row) for row in session.scalars(query)]

    def steps(self, group_run_id: int) -> list[RunView]:
        """The step runs of a group run, in the order they ran (without their logs)."""
        query = (
            select(ProcessRun)
            .where(ProcessRun.group_run_id == group_run_id)
            .order_by(ProcessRun.id)
        )
        with read_session(self.engine) as session:
            return [_view(row, full=False) for row in session.scalars(query)]

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
                    .where(*_filters(window.c, **wanted))
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
                        .where(table.c.id < lowest, *_filters(table.c, **wanted))
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
            return [_view(row, full=False) for row in rows]

    def stats(
        self, process: str | None = None, since: datetime | None = None
    ) -> list[ProcessStats]:
        """Per process: counts by status, success rate, p50/p95/max duration, last run."""
        columns = ProcessRun.__table__.c
        with read_session(self.engine) as session:
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

    def read_log(self, run_id: int, offset: int = 0) -> LogChunk:
        """The log from character ``offset`` on, cut in the database: following a growing
        log reads only what is new, and the finished flag comes from the same snapshot."""
        columns = ProcessRun.__table__.c
        start = max(offset, 0)
        with read_session(self.engine) as session:
            for restarted in (False, True):
                row = session.execute(
                    select(
                        func.coalesce(func.length(columns.log), 0),
                        func.substr(columns.log, start + 1),
                        columns.status,
                    ).where(columns.id == run_id)
                ).one_or_none()
                if row is None:
                    raise NotFound("run", run_id)
                length, text, status = row
                if length >= start:
                    text = text or ""
                    return LogChunk(text, start + len(text), status in TERMINAL, restarted)
                start = 0  # rewritten shorter than what was read: start over
        raise AssertionError("unreachable: a log cannot be shorter than 0")

    def prune(
        self,
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
                self._count_runs(statuses, before)
                if dry_run
                else self._prune_runs(statuses, before, batch_size)
            )
            runs.update(by_status)
            children += steps
        before = now - (older_than or KEEP_COMPLETE_REQUEST)
        requests = self._count_requests(before) if dry_run else self._prune_requests(before)
        ordered = {status.value: runs[status.value] for status in RunStatus if runs[status.value]}
        return Pruned(ordered, children, requests, dry_run)

    def _count_runs(
        self, statuses: Collection[RunStatus], before: datetime
    ) -> tuple[Counter[str], int]:
        """What :meth:`_prune_runs` would delete: top-level runs by status, and their children."""
        table = ProcessRun.__table__
        parents = table.alias("parent")
        old = _prunable(table.c, statuses, before)
        by_status = select(table.c.status, func.count()).where(*old).group_by(table.c.status)
        old_parents = select(parents.c.id).where(*_prunable(parents.c, statuses, before))
        children = (
            select(func.count()).select_from(table).where(table.c.group_run_id.in_(old_parents))
        )
        with read_session(self.engine) as session:
            rows = session.execute(by_status).all()
            found = Counter({RunStatus(status).value: count for status, count in rows})
            return found, session.scalar(children) or 0

    def _prune_runs(
        self, statuses: Collection[RunStatus], before: datetime, batch_size: int
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
            with session_scope(self.engine) as session:
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

    def _count_requests(self, before: datetime) -> int:
        """What :meth:`_prune_requests` would delete."""
        table = ProcessRequest.__table__
        with read_session(self.engine) as session:
            query = select(func.count()).select_from(table).where(*_old_requests(table.c, before))
            return session.scalar(query) or 0

    def _prune_requests(self, before: datetime) -> int:
        """Delete complete requests untouched since ``before``; their runs stay (FK SET NULL)."""
        table = ProcessRequest.__table__
        old = _old_requests(table.c, before)
        deleted = 0
        while True:
            with session_scope(self.engine) as session:
                ids = list(
                    session.scalars(select(table.c.id).where(*old).limit(PRUNE_REQUEST_BATCH))
                )
                if not ids:
                    return deleted
                session.execute(delete(table).where(table.c.id.in_(ids)))
                deleted += len(ids)
