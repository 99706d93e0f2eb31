"""Reconcile Redis with the database (design §3): rebuild missing entries, drop orphans.

SQL is the source of truth and entries are disposable. Beat records every fire as a
``queued`` run before it publishes it, so the runs on record say which fires happened;
sync never rewrites an entry it can read:

* a scheduled request whose entry is missing (or unreadable) is rebuilt from the
  later of when it was last scheduled and one second after its last recorded fire
  (its latest run's ``scheduled_at``, or the unreadable entry's own ``last_run_at``),
  so no recorded fire is repeated and a gap goes through the misfire policy; with no
  fire left from there, it becomes ``complete``. A one-shot (``immediate``, ``later``)
  that lost its entry before its fire is rebuilt the same way, so it fires once on
  recovery (or, with ``--misfire skip``, is recorded as missed), as Etendo does;
* an entry whose request is not scheduled (unscheduled, complete, deleted) is removed;
* a readable entry of a scheduled request is kept untouched, a tombstone included
  (beat ends it); one that only lost its place in the schedule set gets it back.

Everything happens in one transaction opened before Redis is read: on SQLite that
takes the write lock, so request changes and beat's completions wait for sync. On
PostgreSQL nothing waits, so order does the work: entries are read before requests,
hence a series that beat ends meanwhile (SQL, then Redis) is seen as ended; and each
write is conditional on the entry's meta being the one read, as beat's writes are,
so an entry another writer put meanwhile is left alone. What remains there is an
unschedule or a first schedule committing within the milliseconds between sync's
reads: it can leave one stray entry (which may fire) or a missing one until the next sync.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from celery import Celery
from celery.utils.log import get_logger
from redis.exceptions import RedisError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bgproc.errors import BgprocError, NotFound, Unavailable
from bgproc.registry import Registry
from bgproc.services.requests import placement
from bgproc.services.requestview import calendars_of, timing_of
from bgproc.statuses import Channel, RequestStatus
from bgproc.store.db import session_scope
from bgproc.store.entries import PUT_IF_UNCHANGED_LUA, EntryStore, TimingEntry
from bgproc.store.models import ProcessRequest, ProcessRun
from bgproc.timing.calendars import CalendarPlan, OnExcluded
from bgproc.timing.fields import TimingKind
from bgproc.timing.plan import ONE_MICROSECOND, Timing

logger = get_logger(__name__)

T = TypeVar("T")

CHUNK = 1000  # Redis commands per pipeline round trip
ONE_SECOND = timedelta(seconds=1)
# Writes only over the meta sync read ("" for none), as beat's own writes do (entries.py).
# KEYS: entry, schedule set. ARGV: meta read.
REMOVE_IF_UNCHANGED_LUA = """
if (redis.call('HGET', KEYS[1], 'meta') or '') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('DEL', KEYS[1])
return 1
"""
@dataclass(frozen=True)
class SyncReport:
    """What one sync changed, by request id; ``kept`` counts entries left as they were."""

    rebuilt: list[int] = field(default_factory=list)
    reindexed: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    kept: int = 0

    def as_json(self) -> dict[str, Any]:
        """The object ``bgproc sync --json`` prints."""
        return {
            "rebuilt": self.rebuilt,
            "reindexed": self.reindexed,
            "removed": self.removed,
            "completed": self.completed,
            "skipped": [{"id": k, "reason": v} for k, v in sorted(self.skipped.items())],
            "kept": self.kept,
        }

    def summary(self) -> str:
        """One line for the log and the terminal, with why anything was skipped."""
        counts = ", ".join(
            f"{len(ids)} {name}"
            for name, ids in (
                ("rebuilt", self.rebuilt),
                ("reindexed", self.reindexed),
                ("removed", self.removed),
                ("completed", self.completed),
            )
        )
        line = f"{counts}, {self.kept} kept, {len(self.skipped)} skipped"
        reasons = "; ".join(f"request {k}: {v}" for k, v in sorted(self.skipped.items()))
        return f"{line} ({reasons})" if reasons else line


@dataclass
class _Plan:
    """What one sync decided: the report's lists, and the writes applied together at the end."""

    rebuilt: list[int] = field(default_factory=list)
    reindexed: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    kept: int = 0
    puts: list[tuple[TimingEntry, str]] = field(default_factory=list)  # entry, meta read
    reindex: list[TimingEntry] = field(default_factory=list)


def sync(engine: Engine, entries: EntryStore, registry: Registry, now: datetime) -> SyncReport:
    """Make Redis match the database without ever firing a run twice (see the module doc)."""
    with session_scope(engine) as session:
        session.connection()  # the transaction (SQLite: the write lock) before Redis is read
        with _redis_errors():
            stored = _read(entries, sorted(entries.ids()))
        indexed = set(stored)
        rows = session.scalars(
            select(ProcessRequest).where(ProcessRequest.status == RequestStatus.scheduled)
        ).all()
        with _redis_errors():
            stored |= _read(entries, [row.id for row in rows if row.id not in indexed])
        plan = _decide(entries, registry, session, rows, indexed, stored, now)
        orphans = sorted(indexed - {row.id for row in rows})
        with _redis_errors():
            raced = _write(entries, plan, [(i, stored[i][1] or "") for i in orphans])
    for request_id, reason in sorted(plan.skipped.items()):
        logger.warning("sync: request %s skipped: %s", request_id, reason)
    if raced:
        logger.info("sync: entries %s changed meanwhile; left as their writer left them", raced)
    return SyncReport(
        rebuilt=[i for i in plan.rebuilt if i not in raced],
        reindexed=plan.reindexed,
        removed=[i for i in orphans if i not in raced],
        completed=plan.completed,
        skipped=plan.skipped,
        kept=plan.kept + len([i for i in plan.rebuilt if i in raced]),
    )


def _decide(
    entries: EntryStore,
    registry: Registry,
    session: Session,
    rows: Sequence[ProcessRequest],
    indexed: set[int],
    stored: dict[int, tuple[str | None, str | None]],
    now: datetime,
) -> _Plan:
    """Sort the scheduled requests into kept, reindexed, and lost (rebuilt or ended)."""
    plan = _Plan()
    lost: list[ProcessRequest] = []
    for row in rows:
        entry = _loaded(entries.app, *stored[row.id])
        if entry is None:
            lost.append(row)
        elif row.id in indexed:
            plan.kept += 1
        else:
            plan.reindex.append(entry)
            plan.reindexed.append(row.id)
    last_dues = _last_dues(session) if lost else {}
    for row in lost:
        meta = stored[row.id][1]
        recorded = (last_dues.get(row.id), _last_run_at(meta))
        last_due = max((due for due in recorded if due is not None), default=None)
        _rebuild(entries, registry, plan, row, meta or "", last_due, now)
    return plan


def _rebuild(
    entries: EntryStore,
    registry: Registry,
    plan: _Plan,
    row: ProcessRequest,
    meta: str,
    last_due: datetime | None,
    now: datetime,
) -> None:
    """Plan the entry of a scheduled request that has none, or end the request."""
    try:
        queue, time_limit_s = placement(row, registry)
    except NotFound:
        plan.skipped[row.id] = f"process {row.process!r} is not registered"
        return
    point = row.updated_at.replace(microsecond=0)
    if last_due is not None:
        point = max(point, last_due.replace(microsecond=0) + ONE_SECOND)
    try:
        timing = _due_timing(row)
        fires = CalendarPlan(timing, calendars_of(row), OnExcluded(row.on_excluded))
        first = fires.next_fire(point - ONE_MICROSECOND)
    except (BgprocError, ValueError, KeyError) as error:  # a row no plan can be read from
        plan.skipped[row.id] = f"timing cannot be read: {error}"
        return
    if first is None:
        _end(row, now)
        plan.completed.append(row.id)
    else:
        entry = entries.build(
            row.id, timing, scheduled_from=point, misfire=row.misfire, queue=queue,
            time_limit_s=time_limit_s, catch_up_max=row.catch_up_max,
            calendars=calendars_of(row), on_excluded=row.on_excluded,
        )
        plan.puts.append((entry, meta))
        plan.rebuilt.append(row.id)


def _due_timing(row: ProcessRequest) -> Timing:
    """The timing the entry was planned with: an ``immediate`` starts when it was scheduled."""
    timing = timing_of(row)
    if timing.kind is TimingKind.IMMEDIATE:
        return replace(timing, start=row.updated_at.replace(microsecond=0))
    return timing.anchored(row.updated_at)


def _end(row: ProcessRequest, now: datetime) -> None:
    """Nothing is left to fire: the request is complete, as beat would have made it."""
    row.status = RequestStatus.complete
    row.updated_at = now


def _last_dues(session: Session) -> dict[int, datetime]:
    """The latest recorded due time of every scheduled request, in one query: of its
    fires (``request run``'s direct runs are not, and leave the plan alone)."""
    query = (
        select(ProcessRun.request_id, func.max(ProcessRun.scheduled_at))
        .join(ProcessRequest, ProcessRequest.id == ProcessRun.request_id)
        .where(ProcessRequest.status == RequestStatus.scheduled)
        .where(ProcessRun.channel == Channel.scheduler)
        .group_by(ProcessRun.request_id)
    )
    return {request_id: due for request_id, due in session.execute(query) if due is not None}


def _loaded(app: Celery, definition: str | None, meta: str | None) -> TimingEntry | None:
    """The entry as beat would load it, or None when beat could not."""
    if not definition:
        return None
    try:
        return TimingEntry.from_hash(app, definition, meta)
    except Exception:  # whatever beat cannot load, sync rewrites
        return None


def _last_run_at(meta: str | None) -> datetime | None:
    """The last fire an entry's meta records, read even when its definition is unreadable."""
    try:
        last = TimingEntry.decode_meta(meta).get("last_run_at")
    except Exception:  # an unreadable meta records nothing
        return None
    return last if isinstance(last, datetime) and last.tzinfo is not None else None


def _read(entries: EntryStore, ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """The raw definition and meta of each request's entry hash, a pipeline per chunk."""
    raw: dict[int, tuple[str | None, str | None]] = {}
    for chunk in _chunks(ids):
        with entries.redis.pipeline(transaction=False) as pipe:
            for request_id in chunk:
                pipe.hmget(entries.key(request_id), "definition", "meta")
            for request_id, (definition, meta) in zip(chunk, pipe.execute(), strict=True):
                raw[request_id] = (definition, meta)
    return raw


def _write(entries: EntryStore, plan: _Plan, orphans: list[tuple[int, str]]) -> set[int]:
    """Write the plan to Redis; the ids left alone because another writer changed their entry."""
    schedule_key = entries.conf.schedule_key
    put = entries.redis.register_script(PUT_IF_UNCHANGED_LUA)
    remove = entries.redis.register_script(REMOVE_IF_UNCHANGED_LUA)
    raced: set[int] = set()
    for chunk in _chunks(plan.puts):
        with entries.redis.pipeline(transaction=False) as pipe:
            for entry, read in chunk:
                args = [read, entry.definition_json(), entry.meta_json(), entry.score]
                put(keys=[entry.key, schedule_key], args=args, client=pipe)
            done = pipe.execute()
        raced |= {entry.request_id for (entry, _), ok in zip(chunk, done, strict=True) if not ok}
    for chunk in _chunks(orphans):
        with entries.redis.pipeline(transaction=False) as pipe:
            for request_id, read in chunk:
                remove(keys=[entries.key(request_id), schedule_key], args=[read], client=pipe)
            done = pipe.execute()
        raced |= {request_id for (request_id, _), ok in zip(chunk, done, strict=True) if not ok}
    for chunk in _chunks(plan.reindex):
        with entries.redis.pipeline(transaction=False) as pipe:
            for entry in chunk:
                pipe.zadd(schedule_key, {entry.key: entry.score}, nx=True)
            pipe.execute()
    return raced


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """Slices of CHUNK: one pipeline each, so 10,000 entries cost ten round trips."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Redis failures become one ``Unavailable`` line (the SQL transaction rolls back)."""
    try:
        yield
    except (RedisError, OSError) as error:
        raise Unavailable.of_redis(error) from None
