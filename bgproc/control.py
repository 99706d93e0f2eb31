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
class QueueDepth:
    """One broker queue: messages waiting, and messages taken but not yet acknowledged."""

    name: str
    waiting: int
    consumers: tuple[str, ...]  # the live workers that consume it

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "waiting": self.waiting, "consumers": list(self.consumers)}


class Control:
    """The live side of one installation: worker announcements, queue depths, kill requests."""

    def __init__(self, redis: Redis, broker: Redis, settings: Settings) -> None:
        self.redis = redis  # where leases and kill requests live (the schedule Redis)
        self.broker = broker
        self.key_prefix = settings.key_prefix  # kombu's global key prefix: queue keys too
        self.workers_key = settings.workers_key
        self.worker_info_key = settings.workers_key + ":info"
        self.kills_key = settings.kill_requests_key

    # -- workers ----------------------------------------------------------------------

    def announce(self, info: WorkerInfo) -> None:
        """The worker is alive (called every few seconds from its main process)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.worker_info_key, info.name, json.dumps(info.as_json()))
            pipe.zadd(self.workers_key, {info.name: time.time()})
            pipe.execute()

    def retire(self, name: str) -> None:
        """The worker stops cleanly: it leaves the list at once."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.workers_key, name)
            pipe.hdel(self.worker_info_key, name)
            pipe.execute()

    def workers(self) -> list[WorkerInfo]:
        """The live workers, by name; announcements older than ``WORKER_GONE_S`` are dropped."""
        cutoff = time.time() - WORKER_GONE_S
        gone = self.redis.zrangebyscore(self.workers_key, "-inf", f"({cutoff}")
        if gone:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.workers_key, *gone)
                pipe.hdel(self.worker_info_key, *gone)
                pipe.execute()
        names = self.redis.zrangebyscore(self.workers_key, cutoff, "+inf")
        if not names:
            return []
        found = self.redis.hmget(self.worker_info_key, names)
        return sorted(
            (WorkerInfo.from_json(text) for text in found if text is not None),
            key=lambda w: w.name,
        )

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
