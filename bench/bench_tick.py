"""Benchmark: beat tick time with 1,000, 10,000 and 100,000 scheduled requests.

Run: .venv/bin/python -m bench.bench_tick [--ticks 50]   (from the repo root; needs Redis on
127.0.0.1:6379 or BGPROC_BROKER_URL). Takes well under a minute.

What is measured: the wall time of one ``EntryScheduler(app).tick()`` (bgproc's beat
scheduler without the SQL hooks), built in this process with the beat lock acquired as
``celery beat`` does at start-up (a fresh scheduler per size: the 10 s lock would expire
while the next size is written). Entries are written by ``EntryStore.put`` itself, one call
per request; only the round trips are shared (``BatchedWrites``: a pipeline stands in for
RedBeat's client in a second app of the same installation). The population grows
1k → 10k → 100k in one key prefix; each entry is a daily plan at a time 2–22 h away
(1,200 different times), so none is due.

- *not due*: the scheduler reads the clock as is; nothing is due, as in the common case.
- *100 due*: 100 more entries every 1 s, and the scheduler's clock steps 1 s before each
  tick, so every tick fires all 100 (advance in Redis and publish to the broker).

Median and p95 over ``--ticks`` ticks after 5 warm-up ticks, per size, and the ratio of the
median at 100k to the median at 1k (target <= 2). For reference, the same for plain
``redbeat.RedBeatScheduler`` with plain interval entries (2–21 h, not due) at the same sizes,
written by ``RedBeatSchedulerEntry.save`` through the same pipeline.
Every key lives under a fresh prefix and is deleted at the end, also on error.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import redis
from celery import Celery
from celery.schedules import schedule
from redbeat.schedulers import (
    RedBeatScheduler,
    RedBeatSchedulerEntry,
    acquire_distributed_beat_lock,
    ensure_conf,
    get_redis,
)

from bench.machine import REDIS_URL, delete_prefix, exit_on_sigterm, machine_line, percentile
from bench.plain_redbeat_app import make_app as make_plain_app
from bgproc.runtime.app import create_app
from bgproc.runtime.entryscheduler import EntryScheduler
from bgproc.settings import Settings
from bgproc.store.entries import EntryStore
from bgproc.timing.plan import Timing

SIZES = (1_000, 10_000, 100_000)
PLAIN_SIZES = (1_000, 10_000, 100_000)
DUE = 100  # entries due at every tick in the "100 due" case
WARMUP_TICKS = 5
TARGET_RATIO = 2.0
QUEUE = "celery"


class SteppedClock:
    """The scheduler's clock: the real time, or a fixed time moved on by hand."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)

    def step(self, seconds: float = 1.0) -> None:
        assert self.fixed is not None
        self.fixed += timedelta(seconds=seconds)


def tick_times(tick: Callable[[], object], ticks: int,
               before: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds of each of ``ticks`` ticks, after the warm-up ones."""
    times: list[float] = []
    for number in range(WARMUP_TICKS + ticks):
        if before is not None:
            before()
        started = time.perf_counter()
        tick()
        elapsed = (time.perf_counter() - started) * 1000
        if number >= WARMUP_TICKS:
            times.append(elapsed)
    return times


def figures(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{label:44s} median {median:8.2f} ms   p95 {percentile(times, 95):8.2f} ms")
    return median


def not_due_timings(now: datetime, count: int = 1_200) -> list[Timing]:
    """Daily plans at times 2–22 h from ``now``, one per minute step, anchored at ``now``."""
    timings = []
    for step in range(count):
        at = now + timedelta(hours=2, minutes=step)
        fields = {"timing": "scheduled", "frequency": "daily", "at": at.strftime("%H:%M")}
        timings.append(Timing.build(fields, now, "UTC").anchored(now))
    return timings


def lock(scheduler: RedBeatScheduler) -> None:
    """Take the beat lock as ``celery beat`` does (its ``beat_init`` handler)."""
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))


class BatchedWrites:
    """Stands in for RedBeat's client in a loader app: every ``save()`` joins one pipeline.

    ``TimingEntry.save`` (and RedBeat's) runs ``with get_redis(app).pipeline() as pipe:
    pipe.hset(...); pipe.zadd(...); pipe.execute()``. Here ``pipeline()`` hands out this
    object, whose commands queue on one non-transactional pipeline, sent every ``batch``
    saves: the entries are written by the product's own ``put``/``save``, only the round
    trips are shared.
    """

    def __init__(self, client: redis.Redis, batch: int = 2_000) -> None:
        self.pipe = client.pipeline(transaction=False)
        self.batch = batch
        self.saves = 0

    def pipeline(self, transaction: bool = True) -> BatchedWrites:
        return self

    def __enter__(self) -> BatchedWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, command: str) -> Any:
        return getattr(self.pipe, command)  # hset, hsetnx, zadd: queued

    def execute(self) -> list[Any]:
        self.saves += 1
        if self.saves % self.batch == 0:
            self.flush()
        return []

    def flush(self) -> None:
        self.pipe.execute()


def loader(app: Celery, make: Callable[[], Celery]) -> tuple[Celery, BatchedWrites]:
    """A second app of the same installation whose RedBeat writes go through a pipeline."""
    batched = BatchedWrites(get_redis(app))
    other = make()
    ensure_conf(other)
    other.redbeat_redis = batched  # what get_redis() returns for this app from now on
    return other, batched


@contextmanager
def holding_lock(scheduler: RedBeatScheduler) -> Iterator[RedBeatScheduler]:
    lock(scheduler)
    try:
        yield scheduler
    finally:
        scheduler.close()  # releases the lock


# -- bgproc ---------------------------------------------------------------------------


def bench_bgproc(client: redis.Redis, ticks: int) -> None:
    prefix = f"bench-tick-{uuid.uuid4().hex[:8]}:"
    settings = Settings(broker_url=REDIS_URL, key_prefix=prefix, timezone="UTC")
    app = create_app(settings)
    load_app, batched = loader(app, lambda: create_app(settings))
    store = EntryStore(load_app)
    clock = SteppedClock()
    try:
        now = datetime.now(UTC)
        timings = not_due_timings(now)
        # The due entries start 30 min ahead: not due on the real clock; the stepped clock
        # starts there and moves a few minutes at most, far from the daily plans (2 h+).
        first_fire = (now + timedelta(minutes=30)).replace(microsecond=0)
        every_second = Timing.build(
            {"timing": "scheduled", "frequency": "seconds", "interval": 1,
             "start": first_fire.isoformat()}, now, "UTC"
        ).anchored(now)
        for request_id in range(10_000_000, 10_000_000 + DUE):
            store.put(request_id, every_second, scheduled_from=now, misfire="run-once",
                      queue=QUEUE)
        stepped = first_fire - timedelta(seconds=1)  # the stepped clock, between the cases
        written = 0
        medians: dict[str, dict[int, float]] = {"not due": {}, f"{DUE} due": {}}
        for size in SIZES:
            started = time.perf_counter()
            for request_id in range(written + 1, size + 1):
                store.put(request_id, timings[request_id % len(timings)], scheduled_from=now,
                          misfire="run-once", queue=QUEUE)
            batched.flush()
            elapsed = time.perf_counter() - started
            print(f"populate: {size - written:,} entries via EntryStore.put (pipelined) in "
                  f"{elapsed:.1f} s ({(size - written) / elapsed:,.0f}/s), total {size:,} "
                  f"+ {DUE} every-second entries")
            written = size
            schedule_size = client.zcard(app.redbeat_conf.schedule_key)
            assert schedule_size == size + DUE, schedule_size

            with holding_lock(EntryScheduler(app, clock=clock)) as scheduler:
                clock.fixed = None  # the real time: nothing is due
                times = tick_times(scheduler.tick, ticks)
                medians["not due"][size] = figures(f"bgproc tick, {size:>7,} not due", times)

                clock.fixed = stepped
                queue_key = prefix + QUEUE
                before = client.llen(queue_key)
                times = tick_times(scheduler.tick, ticks, before=clock.step)
                published = client.llen(queue_key) - before
                expected = DUE * (WARMUP_TICKS + ticks)
                if published != expected:
                    print(f"  warning: {published} messages published, expected {expected}")
                medians[f"{DUE} due"][size] = figures(
                    f"bgproc tick, {size:>7,} not due + {DUE} due", times
                )
                stepped = clock()
                client.delete(queue_key)  # the published messages: nobody consumes them
        ratio = medians["not due"][SIZES[-1]] / medians["not due"][SIZES[0]]
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        print(f"bgproc ratio median tick({SIZES[-1]:,})/tick({SIZES[0]:,}), not due: "
              f"{ratio:.2f}   (target <= {TARGET_RATIO:.0f}: {verdict})")
        due = medians[f"{DUE} due"]
        print(f"bgproc ratio median tick({SIZES[-1]:,})/tick({SIZES[0]:,}), {DUE} due: "
              f"{due[SIZES[-1]] / due[SIZES[0]]:.2f}   (informative: ~2 Redis round trips per "
              "fire, so it follows the machine's load)")
    finally:
        delete_prefix(client, prefix)


# -- plain RedBeat ----------------------------------------------------------------------


def bench_plain(client: redis.Redis, ticks: int) -> None:
    prefix = f"bench-tick-plain-{uuid.uuid4().hex[:8]}:"
    app: Celery = make_plain_app(prefix, REDIS_URL)
    load_app, batched = loader(app, lambda: make_plain_app(prefix, REDIS_URL))
    try:
        written = 0
        medians: dict[int, float] = {}
        for size in PLAIN_SIZES:
            started = time.perf_counter()
            for number in range(written, size):
                every = schedule(timedelta(hours=2 + number % 20))
                RedBeatSchedulerEntry(f"plain-{number}", "bench.plain.noop", every,
                                      app=load_app).save()
            batched.flush()
            elapsed = time.perf_counter() - started
            print(f"populate: {size - written:,} plain entries via RedBeatSchedulerEntry.save "
                  f"(pipelined) in {elapsed:.1f} s ({(size - written) / elapsed:,.0f}/s), "
                  f"total {size:,}")
            written = size
            with holding_lock(RedBeatScheduler(app)) as scheduler:
                times = tick_times(scheduler.tick, ticks)
            medians[size] = figures(f"plain RedBeat tick, {size:>7,} not due", times)
        ratio = medians[PLAIN_SIZES[-1]] / medians[PLAIN_SIZES[0]]
        print(f"plain RedBeat ratio median tick({PLAIN_SIZES[-1]:,})/tick({PLAIN_SIZES[0]:,}), "
              f"not due: {ratio:.2f}")
    finally:
        delete_prefix(client, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=50, help="ticks measured per case")
    args = parser.parse_args()
    exit_on_sigterm()
    client = redis.Redis.from_url(REDIS_URL)
    print("== bench_tick: wall time of one beat tick (EntryScheduler.tick, in-process, lock held) "
          "vs number of scheduled requests")
    print(machine_line(client))
    print(f"ticks: {args.ticks} measured per case after {WARMUP_TICKS} warm-up; not-due entries "
          f"are daily plans 2-22 h away; '{DUE} due' = {DUE} every-second entries fired "
          "(advanced + published) at every tick, clock stepped 1 s per tick")
    bench_bgproc(client, args.ticks)
    print("-- reference: plain redbeat.RedBeatScheduler, interval entries 2-21 h, none due")
    bench_plain(client, args.ticks)
    client.close()


if __name__ == "__main__":
    main()
