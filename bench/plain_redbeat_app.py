"""The plain Celery + RedBeat app that ``bench.bench_lateness`` compares bgproc with.

Not run by hand: the benchmark starts ``celery -A bench.plain_redbeat_app beat -S
redbeat.RedBeatScheduler`` and ``celery -A bench.plain_redbeat_app worker`` with
``BENCH_PLAIN_PREFIX`` set. No bgproc import here: this is RedBeat as anyone would use it,
with the same broker, lock and loop settings as bgproc (``bgproc.runtime.app.celery_config``).

What it records, both into Redis lists under the prefix:

- ``<prefix>bench:fires`` (written by beat, ``after_task_publish``, so nothing is added
  before the publish): the task id and the entry's ``meta`` as RedBeat stored it when it
  reserved this fire (``last_run_at`` = the moment beat ran it).
- ``<prefix>bench:starts`` (written by the worker): the task id and ``time.time()`` taken
  as the first statement of the task.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import after_task_publish

PREFIX_ENV = "BENCH_PLAIN_PREFIX"
REDIS_URL_ENV = "BENCH_PLAIN_REDIS_URL"
TASK_NAME = "bench.plain.noop"
IDLE_TASK = "bench.plain.idle"  # bench_throughput: bare Celery's cost per task
ENTRY_NAME = "bench-plain-every-second"
LOOP_S = 1.0  # bgproc.runtime.app.BEAT_LOOP_S
LOCK_TIMEOUT_S = 10  # bgproc.runtime.app.BEAT_LOCK_TIMEOUT_S


def make_app(prefix: str, redis_url: str) -> Celery:
    """A plain app whose every key (broker and RedBeat) starts with ``prefix``."""
    app = Celery("bench_plain")
    app.conf.update(
        broker_url=redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"global_keyprefix": prefix, "visibility_timeout": 3600},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        timezone="UTC",
        enable_utc=True,
        beat_max_loop_interval=LOOP_S,
        redbeat_redis_url=redis_url,
        redbeat_key_prefix=prefix + "redbeat:",
        redbeat_lock_timeout=LOCK_TIMEOUT_S,
    )
    app.conf.bench_prefix = prefix
    return app


app = make_app(
    os.environ.get(PREFIX_ENV, "bench-plain:"),
    os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
)
_clients: dict[int, redis.Redis] = {}


def _client() -> redis.Redis:
    """One client per process (the worker's pool children fork)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(app.conf.broker_url)
    return _clients[pid]


@app.task(name=TASK_NAME, bind=True)
def noop(self: Any) -> None:
    """Record when it started; nothing else."""
    started = time.time()
    record = json.dumps({"id": self.request.id, "started": started})
    _client().rpush(app.conf.bench_prefix + "bench:starts", record)


@app.task(name=IDLE_TASK)
def idle() -> None:
    """Nothing at all: what Celery itself costs per task."""


@after_task_publish.connect(sender=TASK_NAME)
def _record_fire(
    sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """In beat, after the publish: the entry's meta as this fire left it."""
    entry_key = app.conf.redbeat_key_prefix + ENTRY_NAME
    meta = _client().hget(entry_key, "meta")
    task_id = (headers or {}).get("id")
    record = json.dumps({"id": task_id, "meta": meta.decode() if meta else None})
    _client().rpush(app.conf.bench_prefix + "bench:fires", record)
