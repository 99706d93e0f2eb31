"""RedBeat entry I/O under the installation's key prefix: one entry per scheduled request.

The entry is disposable (SQL is the source of truth), so it holds only what beat
needs. Every write that beat makes is a compare-and-set on the entry's ``meta``:
a request re-put or removed while beat holds an old copy is never resurrected,
advanced from stale data, or deleted by mistake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from celery import Celery
from celery.utils.log import get_logger
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis

from bgproc.settings import RUN_TASK
from bgproc.store.schedules import Occurrence, ScheduleDecoder, ScheduleEncoder, TimingSchedule
from bgproc.timing.calendars import Calendar, OnExcluded
from bgproc.timing.plan import DEFAULT_CATCH_UP_MAX, Misfire, Timing

logger = get_logger(__name__)

ENTRY_PREFIX = "request:"  # entry names are request:<id>, under RedBeat's key prefix

# KEYS: entry, schedule set. ARGV: meta beat read, new meta, new score.
ADVANCE_LUA = """
if redis.call('HGET', KEYS[1], 'meta') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
return 1
"""
# KEYS: entry, schedule set. ARGV: meta read ("" for none), definition, meta, score.
PUT_IF_UNCHANGED_LUA = """
if (redis.call('HGET', KEYS[1], 'meta') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'definition', ARGV[2], 'meta', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
return 1
"""
# KEYS: entry, schedule set. ARGV: meta beat read.
FINISH_LUA = """
if redis.call('HGET', KEYS[1], 'meta') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('DEL', KEYS[1])
return 1
"""
# KEYS: schedule set, then members whose hash was missing. Only those still missing go.
DROP_ORPHANS_LUA = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('ZREM', KEYS[1], KEYS[i]) end
end
return 0
"""


def entry_name(request_id: int) -> str:
    """The RedBeat entry name of a request."""
    return f"{ENTRY_PREFIX}{request_id}"


class TimingEntry(RedBeatSchedulerEntry):
    """A request's RedBeat entry: our codec, exact scores, fresh meta on save, CAS on fire."""

    schedule: TimingSchedule

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        schedule: TimingSchedule | None = None,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        enabled: bool = True,
        options: dict[str, Any] | None = None,
        *,
        last_run_at: datetime | None = None,
        total_run_count: int = 0,
        generation: str | None = None,
        meta_raw: str | None = None,
        app: Celery | None = None,
    ) -> None:
        super().__init__(
            name=name,
            task=task,
            schedule=schedule,
            args=args,
            kwargs=kwargs,
            enabled=enabled,
            options=options,
            total_run_count=total_run_count,
            app=app,
        )
        self.last_run_at = last_run_at  # Celery puts "now" here; for us None means never fired
        self.generation = generation or uuid4().hex  # new per put: beat's CAS sees re-puts
        self.meta_raw = meta_raw  # the meta as read from Redis: the CAS reference

    # -- codec ---------------------------------------------------------------

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        """RedBeat's hook (called as ``cls.decode_definition``), with our schedule tag."""
        return json.loads(definition, cls=ScheduleDecoder)

    def definition_json(self) -> str:
        """RedBeat's definition layout, encoded with our tag (RedBeat's save() builds it inline)."""
        return json.dumps(
            {
                "name": self.name,
                "task": self.task,
                "args": self.args,
                "kwargs": self.kwargs,
                "options": self.options,
                "schedule": self.schedule,
                "enabled": self.enabled,
            },
            cls=ScheduleEncoder,
        )

    def meta_json(self) -> str:
        """RedBeat's meta plus ``generation``, which changes on every put."""
        return json.dumps(
            {
                "last_run_at": self.last_run_at,
                "total_run_count": self.total_run_count,
                "generation": self.generation,
            },
            cls=ScheduleEncoder,
        )

    @classmethod
    def from_hash(cls, app: Celery, definition: str, meta: str | None) -> TimingEntry:
        """An entry from its two hash fields (RedBeat's own loader refuses our meta fields)."""
        fields = cls.decode_meta(meta)
        return cls(
            app=app,
            **cls.decode_definition(definition),
            last_run_at=fields.get("last_run_at"),
            total_run_count=fields.get("total_run_count", 0),
            generation=fields.get("generation"),
            meta_raw=meta,
        )

    @classmethod
    def load_many(cls, app: Celery, keys: list[str]) -> list[TimingEntry]:
        """The entries at ``keys`` in one round trip; sorted-set members without a hash go."""
        client = get_redis(app)
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "definition", "meta")
            rows = pipe.execute()
        entries: list[TimingEntry] = []
        orphans: list[str] = []
        for key, (definition, meta) in zip(keys, rows, strict=True):
            if not definition:
                orphans.append(key)
                continue
            try:
                entries.append(cls.from_hash(app, definition, meta))
            except Exception:  # unreadable counts as missing: sync rewrites it
                logger.exception("cannot decode the schedule entry %s; treated as missing", key)
        if orphans:
            schedule_key = app.redbeat_conf.schedule_key
            client.register_script(DROP_ORPHANS_LUA)(keys=[schedule_key, *orphans])
        return entries

    @classmethod
    def from_key(cls, key: str, app: Celery | None = None) -> TimingEntry:
        found = cls.load_many(ensure_conf(app).app, [key])
        if not found:
            raise KeyError(key)
        return found[0]

    # -- when ------------------------------------------------------------------

    @property
    def request_id(self) -> int:
        """The request this entry fires, from its name."""
        return int(self.name.removeprefix(ENTRY_PREFIX))

    @property
    def due_at(self) -> datetime:
        """The next fire; with nothing left, the last one, so beat's next tick ends the entry."""
        fire = self.schedule.next_due(self.last_run_at)
        return fire or self.last_run_at or self.schedule.scheduled_from

    @property
    def score(self) -> float:
        """The exact epoch of :attr:`due_at`: never early (RedBeat's own is, issues 307/210)."""
        return self.due_at.timestamp()

    def is_due(self) -> Any:
        """Celery's contract; RedBeat's would pass year 1 for "never fired" and lose the origin."""
        return self.schedule.is_due(self.last_run_at)

    # -- writes ----------------------------------------------------------------

    def save(self) -> TimingEntry:
        """Store the entry as it is, meta included: a re-put request starts afresh."""
        meta = self.meta_json()
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, mapping={"definition": self.definition_json(), "meta": meta})
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        self.meta_raw = meta
        return self

    def fired(self, occurrence: Occurrence) -> TimingEntry:
        """The entry after ``occurrence``, its options carrying the headers of this fire."""
        headers = {
            **self.options.get("headers", {}),
            "bgproc_scheduled_at": occurrence.due.isoformat(),
            "bgproc_misfired_count": occurrence.missed,
            "bgproc_misfired_first": (
                occurrence.first_missed.isoformat() if occurrence.first_missed else None
            ),
        }
        return self._but(
            options={**self.options, "headers": headers},
            last_run_at=occurrence.due,
            total_run_count=self.total_run_count + int(occurrence.run),
        )

    def _but(self, **changes: Any) -> TimingEntry:
        """A copy of this entry with ``changes`` (keywords of the constructor), not yet read
        from Redis (no meta)."""
        fields = {
            "name": self.name,
            "task": self.task,
            "schedule": self.schedule,
            "args": self.args,
            "kwargs": self.kwargs,
            "enabled": self.enabled,
            "options": self.options,
            "last_run_at": self.last_run_at,
            "total_run_count": self.total_run_count,
            "generation": self.generation,
            "app": self.app,
        }
        return type(self)(**{**fields, **changes})

    def advance(self, occurrence: Occurrence) -> TimingEntry | None:
        """Record ``occurrence`` before anything is published; None if the entry changed."""
        after = self.fired(occurrence)
        meta = after.meta_json()
        script = get_redis(self.app).register_script(ADVANCE_LUA)
        keys = [self.key, self.app.redbeat_conf.schedule_key]
        if not script(keys=keys, args=[self.meta_raw or "", meta, after.score]):
            return None
        after.meta_raw = meta
        return after

    def start_plan_at(self, at: datetime) -> bool:
        """Plan from ``at`` as if scheduled then, unless the entry changed since it was read:
        for a request no beat watched until ``at``, what fell due before was missed by none."""
        planned = self._but(schedule=self.schedule.but_from(at))
        script = get_redis(self.app).register_script(PUT_IF_UNCHANGED_LUA)
        keys = [self.key, self.app.redbeat_conf.schedule_key]
        meta = self.meta_raw or ""
        return bool(script(keys=keys, args=[meta, planned.definition_json(), meta, planned.score]))

    def finish(self) -> bool:
        """Remove this entry, unless it was re-put or removed since it was read."""
        script = get_redis(self.app).register_script(FINISH_LUA)
        keys = [self.key, self.app.redbeat_conf.schedule_key]
        return bool(script(keys=keys, args=[self.meta_raw or ""]))


class EntryStore:
    """The schedule entries of one installation (the app's RedBeat key prefix); no SQL."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.conf = ensure_conf(app)
        self.redis = get_redis(app)

    def key(self, request_id: int) -> str:
        """The Redis key of the request's entry hash."""
        return TimingEntry.generate_key(self.app, entry_name(request_id))

    def put(self, request_id: int, timing: Timing, **options: Any) -> None:
        """Write the request's entry afresh (options as for :meth:`build`)."""
        self.build(request_id, timing, **options).save()

    def build(
        self,
        request_id: int,
        timing: Timing,
        *,
        scheduled_from: datetime,
        misfire: Misfire | str,
        queue: str,
        time_limit_s: int | None = None,
        catch_up_max: int | None = None,
        calendars: Sequence[Calendar] = (),
        on_excluded: OnExcluded | str = OnExcluded.SKIP,
    ) -> TimingEntry:
        """The entry of a request, not yet written (sync writes it conditionally)."""
        schedule = TimingSchedule(
            timing, scheduled_from, Misfire(misfire), app=self.app,
            catch_up_max=catch_up_max or DEFAULT_CATCH_UP_MAX, calendars=calendars,
            on_excluded=on_excluded,
        )  # fmt: skip
        limits = {"time_limit": time_limit_s} if time_limit_s else {}
        return TimingEntry(
            name=entry_name(request_id),
            task=RUN_TASK,
            schedule=schedule,
            kwargs={},
            options={"queue": queue, "headers": {"bgproc_request_id": request_id}, **limits},
            app=self.app,
        )

    def remove(self, request_id: int) -> bool:
        """Delete the request's entry; whether there was one."""
        key = self.key(request_id)
        with self.redis.pipeline() as pipe:
            pipe.zrem(self.conf.schedule_key, key)
            pipe.delete(key)
            _, deleted = pipe.execute()
        return bool(deleted)

    def get(self, request_id: int) -> TimingEntry | None:
        """The request's entry, or None (also when it cannot be decoded: sync rewrites it)."""
        found = TimingEntry.load_many(self.app, [self.key(request_id)])
        return found[0] if found else None

    def next_fire(self, request_id: int) -> datetime | None:
        """The entry's next fire, from its schedule and meta (the score may be a tombstone's)."""
        entry = self.get(request_id)
        return None if entry is None else entry.schedule.next_due(entry.last_run_at)

    def ids(self) -> set[int]:
        """Ids of the requests with an entry, from one walk of the sorted set."""
        prefix = self.conf.key_prefix + ENTRY_PREFIX
        return {
            int(member.removeprefix(prefix))
            for member, _ in self.redis.zscan_iter(self.conf.schedule_key, count=1000)
            if member.startswith(prefix)
        }
