"""Live state, from Redis only: which workers are up, how deep the queues are, kill requests.

Celery's own remote control needs a broadcast round trip and every worker to answer in
time; here each worker announces itself every few seconds instead (``announce``), so
``monitor workers`` is one read and a worker that died simply drops out when its
announcement ages. What each worker runs now comes from the monitor database.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from redis import Redis

from bgproc.settings import Settings

WORKER_GONE_S = 15.0  # a worker not heard of for this long is no longer listed
BEAT_STALE_S = 5.0  # a beat ticks every second: one silent for this long is stale
BEAT_GONE_S = 300.0  # a stale beat stays listed this long (it says a scheduler died), then goes
UNACKED = "unacked"  # kombu's Redis transport: messages taken by a worker, not yet acked
TASK_ID = re.compile(rb'"id": "([^"]+)"')  # a Celery message's headers name its task id


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as it announces itself."""

    name: str  # Celery's node name, e.g. celery@host1
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    pool: str
    started_at: datetime
    seen_at: datetime

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data.update(
            queues=list(self.queues),
            started_at=self.started_at.isoformat(),
            seen_at=self.seen_at.isoformat(),
        )
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerInfo:
        data = json.loads(text)
        return cls(
            name=data["name"],
            host=data["host"],
            pid=int(data["pid"]),
            queues=tuple(data["queues"]),
            concurrency=int(data["concurrency"]),
            pool=data["pool"],
            started_at=datetime.fromisoformat(data["started_at"]),
            seen_at=datetime.fromisoformat(data["seen_at"]),
        )


@dataclass(frozen=True)
class BeatInfo:
    """A beat as its heartbeat describes it, written at every tick."""

    name: str  # host:pid
    host: str
    pid: int
    holds_lock: bool  # False: standing by (or in an outage)
    started_at: datetime
    ticked_at: datetime
    down: tuple[str, ...] = ()  # the services it cannot reach now
    last_error: str = ""  # its last outage, kept after recovery

    def stale(self, now: datetime) -> bool:
        """Not ticked for :data:`BEAT_STALE_S`: stopped, hung, or dead."""
        return (now - self.ticked_at).total_seconds() > BEAT_STALE_S

    def as_json(self, now: datetime | None = None) -> dict[str, object]:
        data = asdict(self)
        data.update(
            down=list(self.down),
            started_at=self.started_at.isoformat(),
            ticked_at=self.ticked_at.isoformat(),
        )
        if now is not None:
            data["stale"] = self.stale(now)
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> BeatInfo:
        data = json.loads(text)
        return cls(
            name=data["name"],
            host=data["host"],
            pid=int(data["pid"]),
            holds_lock=bool(data["holds_lock"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            ticked_at=datetime.fromisoformat(data["ticked_at"]),
            down=tuple(data.get("down", ())),
            last_error=str(data.get("last_error", "")),
        )


@dataclass(frozen=True)
class QueueDepth:
    """One broker queue: messages waiting, and messages taken but not yet acknowledged."""

    name: str
    waiting: int
    consumers: tuple[str, ...]  # the live workers that consume it

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "waiting": self.waiting, "consumers": list(self.consumers)}


class _Roster:
    """Who announced themselves lately: a sorted set of names by when each was last heard
    of, and a hash (``<key>:info``) of what each said; the silent ones age out."""

    def __init__(self, redis: Redis, key: str, gone_s: float) -> None:
        self.redis = redis
        self.key = key
        self.info_key = key + ":info"
        self.gone_s = gone_s

    def announce(self, name: str, said: dict[str, object], at_s: float) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.info_key, name, json.dumps(said))
            pipe.zadd(self.key, {name: at_s})
            pipe.execute()

    def retire(self, name: str) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.key, name)
            pipe.hdel(self.info_key, name)
            pipe.execute()

    def heard_of(self) -> list[bytes]:
        """What each one heard of in the last ``gone_s`` said; older ones are dropped."""
        cutoff = time.time() - self.gone_s
        gone = self.redis.zrangebyscore(self.key, "-inf", f"({cutoff}")
        if gone:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.key, *gone)
                pipe.hdel(self.info_key, *gone)
                pipe.execute()
        names = self.redis.zrangebyscore(self.key, cutoff, "+inf")
        return [text for text in self.redis.hmget(self.info_key, names) if text] if names else []


@dataclass(frozen=True)
class Whereabouts:
    """Where a queued run's message is: a queue, a worker, or nowhere."""

    place: str  # "queue", "worker", "given back soon", "nowhere", or "unknown" (no Redis)
    name: str = ""

    def describe(self) -> str:
        if self.place == "queue":
            return f"waiting in queue {self.name}"
        if self.place == "worker":
            return f"held by worker {self.name}"
        if self.place == "given back soon":
            return "held by a worker that stopped: it goes back to its queue within seconds"
        if self.place == "unknown":
            return f"unknown: Redis is unreachable ({self.name})"
        return "nowhere (neither in a queue nor with a worker): it will be marked lost"


class Control:
    """The live side of one installation: worker announcements, queue depths, kill requests."""

    def __init__(self, redis: Redis, broker: Redis, settings: Settings) -> None:
        self.redis = redis  # where leases and kill requests live (the schedule Redis)
        self.broker = broker
        self.key_prefix = settings.key_prefix  # kombu's global key prefix: queue keys too
        self._workers = _Roster(redis, settings.workers_key, WORKER_GONE_S)
        self._beats = _Roster(redis, settings.beats_key, BEAT_GONE_S)
        self.kills_key = settings.kill_requests_key
        self.settings = settings

    def lock_held(self) -> bool:
        """Whether some beat holds the scheduling lock now."""
        return bool(self.redis.exists(self.settings.beat_lock_key))

    # -- workers ----------------------------------------------------------------------

    def announce(self, info: WorkerInfo) -> None:
        """The worker is alive (called every few seconds from its main process)."""
        self._workers.announce(info.name, info.as_json(), time.time())

    def retire(self, name: str) -> None:
        """The worker stops cleanly: it leaves the list at once."""
        self._workers.retire(name)

    def workers(self) -> list[WorkerInfo]:
        """The live workers, by name; announcements older than ``WORKER_GONE_S`` are dropped."""
        return sorted(map(WorkerInfo.from_json, self._workers.heard_of()), key=lambda w: w.name)

    # -- beats ------------------------------------------------------------------------

    def announce_beat(self, info: BeatInfo) -> None:
        """A beat's heartbeat (every tick)."""
        self._beats.announce(info.name, info.as_json(), info.ticked_at.timestamp())

    def retire_beat(self, name: str) -> None:
        """The beat stops cleanly: it leaves the list at once."""
        self._beats.retire(name)

    def beats(self) -> list[BeatInfo]:
        """Every beat heard of in the last :data:`BEAT_GONE_S`, stale ones included."""
        return sorted(map(BeatInfo.from_json, self._beats.heard_of()), key=lambda b: b.name)

    # -- queues -----------------------------------------------------------------------

    def queues(self, names: Iterable[str]) -> list[QueueDepth]:
        """Depths of ``names`` and of every queue a live worker consumes."""
        workers = self.workers()
        every = _every_queue(names, workers)
        with self.broker.pipeline(transaction=False) as pipe:
            for name in every:
                pipe.llen(self.key_prefix + name)
            depths = pipe.execute()
        return [
            QueueDepth(
                name=name,
                waiting=int(depth),
                consumers=tuple(w.name for w in workers if name in w.queues),
            )
            for name, depth in zip(every, depths, strict=True)
        ]

    def every_queue(self, names: Iterable[str]) -> list[str]:
        """``names`` and every queue a live worker consumes, sorted."""
        return _every_queue(names, self.workers())

    def message_ids(self, names: Iterable[str]) -> set[str]:
        """The task ids of every message in the broker: waiting in ``names`` (and in the
        queues of live workers), or taken by a worker and not yet acknowledged."""
        with self.broker.pipeline(transaction=False) as pipe:
            for name in _every_queue(names, self.workers()):
                pipe.lrange(self.key_prefix + name, 0, -1)
            pipe.hvals(self.key_prefix + UNACKED)
            found = pipe.execute()
        return {
            match.decode()
            for messages in found
            for message in messages
            for match in TASK_ID.findall(message)
        }

    def unacked(self) -> int:
        """Messages taken by workers and not acknowledged yet (running, or prefetched)."""
        return int(self.broker.hlen(self.key_prefix + UNACKED))

    # -- kill requests ----------------------------------------------------------------

    def ask_kill(self, run_id: int) -> None:
        """Ask the worker running ``run_id`` to stop it (its recorder looks every 0.5 s);
        a queued ad-hoc run is refused by the worker that takes it. Only for runs of a
        killable process: the worker of any other run never looks."""
        self.redis.sadd(self.kills_key, str(run_id))

    def take_kill(self, run_id: int) -> bool:
        """Whether a kill was asked for ``run_id`` (the request is consumed): for a run
        about to start, which then must not."""
        return bool(self.redis.srem(self.kills_key, str(run_id)))


def _every_queue(names: Iterable[str], workers: Iterable[WorkerInfo]) -> list[str]:
    """``names`` and every queue a live worker consumes, sorted."""
    return sorted({*names, *(queue for worker in workers for queue in worker.queues)})
