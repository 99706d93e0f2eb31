"""The RedBeat layer on the real Redis: codec, entry I/O, beat decisions, and a real beat.

Each test has its own key prefix and deletes exactly its own keys at the end, so
parallel runs never meet. Beat decisions are driven with a clock passed in; the
last test runs ``celery beat`` itself and watches the broker's queue.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.apps.beat import Beat as BeatCommand
from celery.beat import Service as BeatService
from redbeat.schedulers import acquire_distributed_beat_lock

from bgproc.runtime.app import create_app
from bgproc.runtime.entryscheduler import EntryScheduler as Scheduler
from bgproc.settings import RUN_TASK, Settings
from bgproc.store.entries import EntryStore
from bgproc.store.schedules import SCHEDULE_TYPE, Occurrence, TimingSchedule
from bgproc.timing.calendars import Calendar, plan_of
from bgproc.timing.plan import Misfire, Timing
from tests.waiting import wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE = "bgproc-test"
ZONE = "Europe/Madrid"
T0 = datetime(2030, 3, 30, 21, 59, 30, 250_000, tzinfo=UTC)  # µs on purpose; DST that night
S0 = T0.replace(microsecond=0)  # where a plan anchored at T0 starts
REPO = Path(__file__).resolve().parents[2]

TIMINGS: dict[str, dict[str, object]] = {
    "immediate": {"timing": "immediate"},
    "later": {"timing": "later", "start": "+90s"},
    "seconds": {"timing": "scheduled", "frequency": "seconds", "interval": 7, "repetitions": 4},
    "minutes": {"timing": "scheduled", "frequency": "minutes", "interval": 15, "finish": "+1d"},
    "hourly": {"timing": "scheduled", "frequency": "hourly", "interval": 2, "start": "+1h"},
    "daily-every": {"timing": "scheduled", "frequency": "daily", "interval": 3, "at": "02:30"},
    "daily-weekdays": {
        "timing": "scheduled",
        "frequency": "daily",
        "daily_option": "weekdays",
        "at": "09:00",
    },
    "daily-weekends": {
        "timing": "scheduled",
        "frequency": "daily",
        "daily_option": "weekends",
        "at": "18:45",
    },
    "weekly": {
        "timing": "scheduled",
        "frequency": "weekly",
        "days": "mon,thu",
        "interval": 2,
        "at": "07:15:30",
    },
    "monthly-day": {"timing": "scheduled", "frequency": "monthly", "day": "31", "at": "12:00"},
    "monthly-last": {"timing": "scheduled", "frequency": "monthly", "day": "last", "at": "23:59"},
    "monthly-ordinal": {
        "timing": "scheduled",
        "frequency": "monthly",
        "ordinal": "second",
        "weekday": "tue",
        "at": "08:00",
        "interval": 2,
    },
    "yearly-day": {
        "timing": "scheduled",
        "frequency": "yearly",
        "month": "4",
        "day": "1",
        "at": "00:00:15",
    },
    "yearly-gap": {  # that night's 02:30 does not exist in Madrid
        "timing": "scheduled",
        "frequency": "yearly",
        "month": "mar",
        "ordinal": "last",
        "weekday": "sun",
        "at": "02:30",
    },
    "yearly-leap": {
        "timing": "scheduled",
        "frequency": "yearly",
        "month": "2",
        "day": "29",
        "at": "09:00",
        "interval": 2,
    },
    "cron-unix": {"timing": "scheduled", "frequency": "cron", "cron": "*/20 1-3 * * *"},
    "cron-quartz": {"timing": "scheduled", "frequency": "cron", "cron": "0 15 10 ? * 6L"},
}


def build(name: str, now: datetime = T0) -> Timing:
    return Timing.build({**TIMINGS[name], "tz": ZONE}, now, "UTC").anchored(now)


def every_seconds(interval: int, now: datetime = T0, **extra: object) -> Timing:
    fields = {"timing": "scheduled", "frequency": "seconds", "interval": interval, **extra}
    return Timing.build(fields, now, "UTC").anchored(now)


def at(seconds: float) -> datetime:
    return S0 + timedelta(seconds=seconds)


# -- fixtures -------------------------------------------------------------------


class Clock:
    """The time the schedulers see."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingScheduler(Scheduler):
    """Our scheduler with its hooks recorded; ``fail_series_end`` plays a database outage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ended: list[int] = []
        self.misfires: list[tuple[int, Occurrence]] = []
        self.fail_series_end = False
        super().__init__(*args, **kwargs)

    def on_series_end(self, request_id: int) -> None:
        if self.fail_series_end:
            raise RuntimeError("database unavailable")
        self.ended.append(request_id)

    def on_misfire(self, request_id: int, occurrence: Occurrence) -> None:
        self.misfires.append((request_id, occurrence))


@pytest.fixture
def settings() -> Settings:
    return Settings(broker_url=REDIS_URL, key_prefix=f"test-{uuid.uuid4().hex}:", timezone=ZONE)


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    """A plain client; at teardown it deletes every key of this test's prefix."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    keys = list(client.scan_iter(match=f"{settings.key_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def app(settings: Settings, client: redis.Redis) -> Celery:
    return create_app(settings)


@pytest.fixture
def store(app: Celery) -> EntryStore:
    return EntryStore(app)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def beat(app: Celery, clock: Clock) -> Iterator[Callable[[], RecordingScheduler]]:
    """Starts a scheduler as ``celery beat`` does (lock included); closes them all at the end."""
    started: list[RecordingScheduler] = []

    def start() -> RecordingScheduler:
        scheduler = RecordingScheduler(app=app, clock=clock)
        acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.close()


def published(client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """Headers of the messages in the test queue, oldest first (kombu pushes on the left)."""
    raw = client.lrange(settings.key_prefix + QUEUE, 0, -1)
    return [json.loads(message)["headers"] for message in reversed(raw)]


def put(store: EntryStore, request_id: int, timing: Timing, **kwargs: Any) -> None:
    options = {"scheduled_from": T0, "misfire": "run-once", "queue": QUEUE, **kwargs}
    store.put(request_id, timing, **options)


def accounted(headers: list[dict[str, Any]], timing: Timing) -> list[datetime]:
    """Every due time the messages settle: the one each ran, and those each reports missed."""
    settled: list[datetime] = []
    for h in headers:
        settled.append(datetime.fromisoformat(h["bgproc_scheduled_at"]))
        if h["bgproc_misfired_count"]:
            first = datetime.fromisoformat(h["bgproc_misfired_first"])
            settled += timing.upcoming(first, h["bgproc_misfired_count"])
    return sorted(settled)


# -- codec and entry I/O -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TIMINGS))
def test_every_timing_round_trips_through_redis(
    name: str, store: EntryStore, client: redis.Redis
) -> None:
    # Given a request's timing put as an entry
    timing = build(name)
    put(store, 7, timing, misfire="skip", time_limit_s=30)
    # When it is read back
    entry = store.get(7)
    # Then it is the same schedule, tagged as ours, with a fresh meta
    assert entry is not None
    assert entry.schedule == TimingSchedule(timing, T0, Misfire.SKIP)
    assert entry.schedule.timing == timing
    assert entry.schedule.timing.upcoming(T0, 30) == timing.upcoming(T0, 30)
    assert (entry.name, entry.task, entry.kwargs) == ("request:7", RUN_TASK, {})
    assert entry.options == {
        "queue": QUEUE,
        "headers": {"bgproc_request_id": 7},
        "time_limit": 30,
    }
    assert (entry.last_run_at, entry.total_run_count) == (None, 0)
    definition = json.loads(client.hget(store.key(7), "definition"))
    assert definition["schedule"]["__type__"] == SCHEDULE_TYPE


@pytest.mark.parametrize("name", sorted(TIMINGS))
def test_next_fire_is_the_timings_first_fire_and_the_score_its_exact_epoch(
    name: str, store: EntryStore, client: redis.Redis, app: Celery
) -> None:
    # Given a request scheduled at T0 (a plan fires from the whole second it was scheduled in)
    timing = build(name)
    put(store, 3, timing)
    # Then the next fire is the timing's own, and the score is exactly it
    expected = timing.upcoming(S0, 1)[0]
    assert store.next_fire(3) == expected
    assert client.zscore(app.redbeat_conf.schedule_key, store.key(3)) == expected.timestamp()


def test_ids_and_remove_stay_inside_the_installation(
    store: EntryStore, settings: Settings, client: redis.Redis
) -> None:
    # Given three entries here and one under another prefix on the same Redis
    for request_id in (1, 2, 30):
        put(store, request_id, build("daily-every"))
    other_prefix = f"test-{uuid.uuid4().hex}:"
    other = EntryStore(create_app(Settings(broker_url=REDIS_URL, key_prefix=other_prefix)))
    try:
        put(other, 99, build("daily-every"))
        # Then each installation sees only its own, and removal is by id
        assert store.ids() == {1, 2, 30}
        assert other.ids() == {99}
        assert store.remove(2) is True
        assert store.remove(2) is False
        assert store.ids() == {1, 30}
        assert store.get(2) is None and store.next_fire(2) is None
        assert not client.exists(store.key(2))
    finally:
        client.delete(*client.scan_iter(match=f"{other_prefix}*"))


def test_reput_starts_afresh(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a series that fired once
    put(store, 1, every_seconds(7, repetitions=4))
    clock.now = at(1)
    beat().tick()
    fired = store.get(1)
    assert fired is not None
    assert (fired.last_run_at, fired.total_run_count) == (S0, 1)
    # When it is rescheduled 30 s later
    later = T0 + timedelta(seconds=30)
    put(store, 1, every_seconds(7, later, repetitions=4), scheduled_from=later)
    # Then its meta is fresh and its plan counts from the reschedule
    fresh = store.get(1)
    assert fresh is not None
    assert (fresh.last_run_at, fresh.total_run_count) == (None, 0)
    assert fresh.generation != fired.generation
    assert store.next_fire(1) == later.replace(microsecond=0)
    assert len(published(client, settings)) == 1


# -- beat decisions, with the clock passed in ---------------------------------------


@pytest.mark.parametrize("policy", ["run-once", "skip"])
@pytest.mark.parametrize("kind", ["later", "immediate"])
def test_one_shot_whose_time_just_passed_fires_once_and_goes(
    kind: str,
    policy: str,
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a one-shot due at S0 whose entry was only written after S0 (RedBeat issue 74)
    fields = {"timing": kind, "start": S0.isoformat()} if kind == "later" else {"timing": kind}
    timing = Timing.build(fields, S0 - timedelta(seconds=5), "UTC").anchored(S0)
    put(store, 5, timing, scheduled_from=at(0.4), misfire=policy)
    # When beat ticks, then ticks again later
    scheduler = beat()
    clock.now = at(0.5)
    scheduler.tick()
    clock.now = at(60)
    scheduler.tick()
    # Then it ran once, for its due time, and its entry is gone
    headers = published(client, settings)
    assert [(h["bgproc_request_id"], h["bgproc_scheduled_at"]) for h in headers] == [
        (5, S0.isoformat())
    ]
    assert headers[0]["bgproc_misfired_count"] == 0
    assert store.get(5) is None and store.ids() == set()
    assert scheduler.ended == [5]


def test_plan_with_no_fire_left_is_removed_after_its_last_fire(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a series of two fires, 7 s apart
    put(store, 1, every_seconds(7, repetitions=2))
    scheduler = beat()
    # When beat ticks at each
    clock.now = at(0)
    scheduler.tick()
    assert store.next_fire(1) == at(7)
    clock.now = at(7)
    scheduler.tick()
    # Then both ran and the entry went with the last
    assert [h["bgproc_scheduled_at"] for h in published(client, settings)] == [
        at(0).isoformat(),
        at(7).isoformat(),
    ]
    assert store.get(1) is None
    assert scheduler.ended == [1]


def test_restarted_beat_never_fires_a_fired_one_shot_again(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a beat that published a one-shot and stopped before removing it
    put(store, 1, build("immediate"))
    first = beat()
    first.fail_series_end = True
    first.tick()
    assert len(published(client, settings)) == 1
    assert store.ids() == {1} and store.next_fire(1) is None  # the tombstone
    first.close()
    # When beat restarts
    second = beat()
    clock.now = at(5)
    second.tick()
    # Then the one-shot is not published again, and its entry is gone
    assert len(published(client, settings)) == 1
    assert store.get(1) is None
    assert second.ended == [1]


@pytest.mark.parametrize(("policy", "runs_at_recovery"), [("run-once", True), ("skip", False)])
def test_misfire_fires_once_or_skips_then_follows_the_plan(
    policy: str,
    runs_at_recovery: bool,
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a series every 10 s that fired at its start, then beat went down for 95 s
    timing = every_seconds(10)
    put(store, 1, timing, misfire=policy)
    before = beat()
    before.tick()
    before.close()
    # When beat comes back
    after = beat()
    clock.now = at(95)
    after.tick()
    # Then the nine missed fires give one run at most, and are reported
    headers = published(client, settings)
    assert len(headers) == 1 + runs_at_recovery
    missed = 8 if runs_at_recovery else 9
    assert after.misfires == [(1, Occurrence(at(90), runs_at_recovery, missed, at(10), at(100)))]
    if runs_at_recovery:
        assert headers[1]["bgproc_scheduled_at"] == at(90).isoformat()
        assert headers[1]["bgproc_misfired_count"] == 8
        assert headers[1]["bgproc_misfired_first"] == at(10).isoformat()
    # And the plan goes on from now: no burst, the next fire is the plan's next
    assert store.next_fire(1) == timing.next_fire(clock.now) == at(100)
    clock.now = at(99.9)
    after.tick()
    assert len(published(client, settings)) == len(headers)
    clock.now = at(100)
    after.tick()
    last = published(client, settings)[-1]
    assert (last["bgproc_scheduled_at"], last["bgproc_misfired_count"]) == (at(100).isoformat(), 0)


@pytest.mark.parametrize(("bound", "dropped"), [(20, 0), (9, 0), (3, 6), (1, 8)])
def test_catch_up_runs_each_missed_fire_oldest_first_up_to_its_bound(
    bound: int,
    dropped: int,
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a series every 10 s that fired at its start, then beat went down for 95 s
    timing = every_seconds(10)
    put(store, 1, timing, misfire="catch-up", catch_up_max=bound)
    before = beat()
    before.tick()
    before.close()
    # When beat comes back and looks as often as it asks to
    after = beat()
    clock.now = at(95)
    for _ in range(20):
        if (after.tick() or 0) > 0:
            break
    # Then the newest `bound` of the nine missed fires ran, oldest first, and only the older
    # ones were reported missed; the plan goes on at its next fire
    ran = [h["bgproc_scheduled_at"] for h in published(client, settings)[1:]]
    assert ran == [at(s).isoformat() for s in range(10 + 10 * dropped, 100, 10)]
    first_run = at(10 + 10 * dropped)
    following = first_run + timedelta(seconds=10)
    expected = [(1, Occurrence(first_run, True, dropped, at(10), following))]
    assert after.misfires == (expected if dropped else [])
    assert accounted(published(client, settings), timing) == [at(s) for s in range(0, 100, 10)]
    assert store.next_fire(1) == at(100)


@pytest.mark.parametrize("policy", ["run-once", "skip"])
@pytest.mark.parametrize("beat_before", [False, True], ids=["no-beat-ever", "beat-stopped-before"])
def test_a_plan_no_beat_watched_starts_when_a_beat_takes_it(
    beat_before: bool,
    policy: str,
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a plan every 10 s and a one-shot due at 10 s, scheduled while no beat ran
    if beat_before:
        clock.now = T0 - timedelta(seconds=5)
        first = beat()
        first.tick()
        first.close()
    plan = every_seconds(10)
    later = Timing.build({"timing": "later", "start": at(10).isoformat()}, T0, "UTC")
    put(store, 1, plan, misfire=policy)
    put(store, 2, later, misfire=policy)
    # When the first beat since comes 95 s later
    clock.now = at(95)
    scheduler = beat()
    scheduler.tick()
    # Then nothing was missed: the one-shot runs now, the plan starts from now
    assert scheduler.misfires == []
    headers = published(client, settings)
    assert [(h["bgproc_request_id"], h["bgproc_scheduled_at"]) for h in headers] == [
        (2, at(10).isoformat())
    ]
    assert headers[0]["bgproc_misfired_count"] == 0
    assert store.next_fire(1) == at(100)
    clock.now = at(100)
    scheduler.tick()
    last = published(client, settings)[-1]
    assert (last["bgproc_scheduled_at"], last["bgproc_misfired_count"]) == (at(100).isoformat(), 0)


def test_fires_missed_while_a_beat_that_watched_was_down_are_misfires(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a plan from 50 s on that a beat watched (never due while it ran), then stopped
    plan = every_seconds(10, start=at(50).isoformat())
    put(store, 1, plan)
    before = beat()
    before.tick()
    before.close()
    # When beat comes back after its first fires
    clock.now = at(95)
    after = beat()
    after.tick()
    # Then they are reported missed and it runs once, as for any downtime
    assert after.misfires == [(1, Occurrence(at(90), True, 4, at(50), at(100)))]
    assert [h["bgproc_scheduled_at"] for h in published(client, settings)] == [at(90).isoformat()]


def test_a_yearly_plan_fires_once_at_the_end_of_the_spring_gap_then_waits_a_year(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a request for 02:30 on March's last Sunday, a wall time that night does not have
    put(store, 1, build("yearly-gap"))
    gap_end = datetime(2030, 3, 31, 1, 0, tzinfo=UTC)  # 03:00 CEST, right after the gap
    scheduler = beat()
    # When beat ticks just before that instant, at it, and through the next hour
    for seconds in (-1, 0, 1, 1800, 3600):
        clock.now = gap_end + timedelta(seconds=seconds)
        scheduler.tick()
    # Then it ran once, at the end of the gap, and its next fire is next year's
    assert [h["bgproc_scheduled_at"] for h in published(client, settings)] == [gap_end.isoformat()]
    assert store.next_fire(1) == datetime(2031, 3, 30, 1, 0, tzinfo=UTC)  # again in the gap


def test_fires_a_little_late_are_caught_up_one_by_one_not_misfired(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a skip series every second whose beat looks 2 s late (within MISFIRE_THRESHOLD)
    put(store, 1, every_seconds(1), misfire="skip")
    clock.now = at(2)
    scheduler = beat()
    # When beat ticks until nothing is due
    for _ in range(5):
        scheduler.tick()
    # Then every fire ran once, in order, and none is reported missed
    runs = published(client, settings)
    assert [r["bgproc_scheduled_at"] for r in runs] == [at(s).isoformat() for s in (0, 1, 2)]
    assert all(r["bgproc_misfired_count"] == 0 for r in runs)
    assert scheduler.misfires == []


def test_stale_copy_in_beat_neither_fires_nor_resurrects_nor_clobbers(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    client: redis.Redis,
    settings: Settings,
    app: Celery,
) -> None:
    # Given beat holding due entries that are then removed, and re-put with a new plan
    put(store, 1, build("immediate"))
    put(store, 2, build("immediate"))
    scheduler = beat()
    stale = scheduler.schedule
    store.remove(1)
    replan = build("later")
    put(store, 2, replan)
    # When beat acts on its copies
    for entry in stale.values():
        scheduler.maybe_due(entry, producer=scheduler.producer)
    # Then nothing is published, the removed entry stays removed, the new plan is intact
    assert published(client, settings) == []
    assert not client.exists(store.key(1))
    assert client.zscore(app.redbeat_conf.schedule_key, store.key(1)) is None
    fresh = store.get(2)
    assert fresh is not None and fresh.schedule.timing == replan and fresh.last_run_at is None


def test_unreadable_entry_counts_as_missing_and_does_not_stop_beat(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a due entry whose definition cannot be decoded, beside a good one
    put(store, 1, build("immediate"))
    put(store, 2, build("immediate"))
    client.hset(store.key(1), "definition", '{"schedule": {"__type__": "bgproc_timing"}}')
    # When beat ticks
    beat().tick()
    # Then the good one fires, and the bad one reads as missing (sync will rewrite it)
    assert [h["bgproc_request_id"] for h in published(client, settings)] == [2]
    assert store.get(1) is None


def test_after_every_tick_no_entry_waits_in_the_due_window_and_no_fire_is_lost(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
    app: Celery,
) -> None:
    # Given one request of every timing
    timings = {i: build(name) for i, name in enumerate(sorted(TIMINGS), start=1)}
    for request_id, timing in timings.items():
        put(store, request_id, timing)
    scheduler = beat()
    rng = random.Random(20300330)
    # When beat ticks at irregular moments, sometimes after long downtimes
    for _ in range(150):
        clock.now += timedelta(seconds=rng.choice([0.3, 1, 7, 60, 900, 3600, 86400, 172800]))
        scheduler.tick()
        # Then nothing due is left behind
        window = client.zrangebyscore(app.redbeat_conf.schedule_key, "-inf", clock.now.timestamp())
        assert window == []
        assert all(store.next_fire(i) > clock.now for i in store.ids())  # type: ignore[operator]
    # And every due time up to now is either run or reported missed, exactly once
    headers = published(client, settings)
    for request_id, timing in timings.items():
        mine = [h for h in headers if h["bgproc_request_id"] == request_id]
        settled = accounted(mine, timing)
        first = timing.upcoming(S0, 1)[0]
        if first > clock.now:
            assert settled == []
            continue
        assert settled[0] == first
        assert settled == timing.upcoming(first, len(settled))
        following = timing.next_fire(settled[-1])
        assert following is None or following > clock.now


# -- a real beat ---------------------------------------------------------------------


class QueueWatch:
    """Records each message of the test queue with the moment it was first seen."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.seen: list[tuple[dict[str, Any], datetime]] = []

    def poll(self) -> QueueWatch:
        headers = published(self.client, self.settings)
        now = datetime.now(UTC)
        self.seen += [(h, now) for h in headers[len(self.seen) :]]
        return self

    def of(self, request_id: int) -> list[tuple[dict[str, Any], datetime]]:
        return [(h, t) for h, t in self.poll().seen if h["bgproc_request_id"] == request_id]


def start_beat(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BGPROC_KEY_PREFIX": settings.key_prefix,
        "BGPROC_BROKER_URL": REDIS_URL,
        "BGPROC_TIMEZONE": "UTC",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.integration.beat_app",
        "beat",
        "-S",
        "bgproc.runtime.entryscheduler:EntryScheduler",
        "--loglevel",
        "INFO",
        "-s",
        str(log.with_suffix(".db")),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_beat(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


@pytest.mark.slow
def test_real_beat_fires_one_shots_once_and_series_on_time_across_a_restart(
    settings: Settings, client: redis.Redis, app: Celery, store: EntryStore, tmp_path: Path
) -> None:
    # Given a series every second and a one-shot, both starting a few seconds from now
    now = datetime.now(UTC)
    series = every_seconds(1, now, start="+3s")
    one_shot = Timing.build({"timing": "later", "start": "+4s"}, now, "UTC")
    put(store, 1, series, scheduled_from=now)
    put(store, 2, one_shot, scheduled_from=now)
    watch = QueueWatch(client, settings)
    log = tmp_path / "beat.log"
    beat = start_beat(settings, log)
    try:
        # When beat runs until the one-shot fired and the series fired four times
        wait_until(lambda: len(watch.of(1)) >= 4 and watch.of(2), 20, what="the first fires")
        stop_beat(beat)
        down_at = len(watch.poll().seen)
        before = len(watch.of(1))
        time.sleep(2.5)  # beat is down over two fires of the series: the point of the test
        assert len(watch.poll().seen) == down_at, "something published while beat was down"
        beat = start_beat(settings, log)
        wait_until(lambda: len(watch.of(1)) >= before + 3, 20, what="the series after the restart")
        stop_beat(beat)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
    output = log.read_text()
    # Then the one-shot ran once, at its time, and its entry is gone
    ((shot, shot_seen),) = watch.of(2)
    assert shot["bgproc_scheduled_at"] == one_shot.start.isoformat()  # type: ignore[union-attr]
    assert store.get(2) is None
    # And the series ran never early, on time before the restart, with no duplicate, every
    # second accounted for (the downtime's fires as missed ones on the first run after it)
    runs = watch.of(1)
    due = [datetime.fromisoformat(h["bgproc_scheduled_at"]) for h, _ in runs]
    assert due == sorted(set(due))
    assert all(seen >= d for d, (_, seen) in zip(due, runs, strict=True))
    on_time = zip(due[:before], runs[:before], strict=True)
    # (bound for a loaded CI machine running tests in parallel; bench_lateness measures it)
    assert all(seen - d < timedelta(seconds=3) for d, (_, seen) in on_time)
    settled = accounted([h for h, _ in runs], series)
    assert settled == series.upcoming(series.start, len(settled))  # type: ignore[arg-type]
    assert shot_seen >= one_shot.start  # type: ignore[operator]
    assert "Acquired lock" in output and "Traceback" not in output
    assert not list(client.scan_iter(match=f"{settings.key_prefix}*backend_cleanup*"))


class SlowPublishScheduler(RecordingScheduler):
    """Publishing takes as long as a busy database and broker might."""

    PUBLISH_S = 0.3

    def on_publish(self, entry: Any) -> Any:
        time.sleep(self.PUBLISH_S)
        return entry


def test_the_sleep_after_a_tick_is_counted_from_its_end(
    store: EntryStore, app: Celery, clock: Clock, client: redis.Redis, settings: Settings
) -> None:
    # Given a plan every 7 s, due now, whose publish takes 0.3 s
    put(store, 1, every_seconds(7))
    scheduler = SlowPublishScheduler(app=app, clock=clock)
    scheduler.max_interval = 60  # so the sleep is the plan's, not beat's longest loop
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    try:
        clock.now = S0
        # When beat ticks (it publishes the fire)
        interval = scheduler.tick()
    finally:
        scheduler.close()
    # Then it sleeps until the next fire as seen after the publish, not before it
    assert len(published(client, settings)) == 1
    assert 6 < interval <= 7 - SlowPublishScheduler.PUBLISH_S


class SignalledPublishScheduler(RecordingScheduler):
    """Told to stop (SIGTERM) while it publishes each of its first ``signals`` fires."""

    signals = 1

    def on_publish(self, entry: Any) -> Any:
        if self.signals:
            self.signals -= 1
            os.kill(os.getpid(), signal.SIGTERM)
        return entry


@pytest.mark.parametrize(("signals", "sent"), [(1, 2), (2, 1)], ids=["one-signal", "two-signals"])
def test_a_stop_signal_during_a_tick_stops_beat_after_the_tick_and_a_second_at_once(
    store: EntryStore,
    app: Celery,
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
    signals: int,
    sent: int,
) -> None:
    # Given two plans due now, and Celery's own beat answer to SIGTERM: close, SystemExit
    put(store, 1, every_seconds(7))
    put(store, 2, every_seconds(7))
    scheduler = SignalledPublishScheduler(app=app, clock=clock)
    scheduler.signals = signals
    service = BeatService(app)
    service.__dict__["scheduler"] = scheduler
    before = signal.getsignal(signal.SIGTERM)
    BeatCommand(app=app).install_sync_handler(service)
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    try:
        clock.now = S0
        # When SIGTERM comes while the first fire (or each fire) is being published
        with pytest.raises(SystemExit):
            scheduler.tick()
    finally:
        signal.signal(signal.SIGTERM, before)
        scheduler.close()
    # Then one signal stops beat once the tick is over (both fires sent); a second, at once
    assert len(published(client, settings)) == sent
    assert scheduler.lock is None


# -- calendars -----------------------------------------------------------------------------


def test_calendars_and_their_policy_round_trip_and_an_older_entry_reads_without_them(
    store: EntryStore, client: redis.Redis
) -> None:
    # Given an entry carrying two calendars and next-business-day
    timing = build("daily-weekdays")
    calendars = [
        Calendar.build("es", ZONE, dates=["2030-04-01"], yearly=["12-25"]),
        Calendar.build("lunch", "Asia/Kolkata", windows=["13:00-15:00"]),
    ]
    put(store, 5, timing, calendars=calendars, on_excluded="next-business-day")
    # Then beat reads the same plan back from Redis
    entry = store.get(5)
    assert entry is not None
    assert entry.schedule.plan == plan_of(timing, calendars, "next-business-day")
    assert store.next_fire(5) == plan_of(timing, calendars, "next-business-day").next_fire(T0)
    # And an entry written before calendars existed reads as one without any
    definition = json.loads(client.hget(store.key(5), "definition"))
    del definition["schedule"]["calendars"], definition["schedule"]["on_excluded"]
    client.hset(store.key(5), "definition", json.dumps(definition))
    older = store.get(5)
    assert older is not None and older.schedule.plan == plan_of(timing)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("skip", ["2030-04-02T09:00:00+02:00"]),  # Monday 1 April excluded: Tuesday's fire
     ("next-business-day", ["2030-04-02T09:00:00+02:00"])],  # moved onto Tuesday's own
)  # fmt: skip
def test_beat_publishes_no_excluded_fire(
    policy: str,
    expected: list[str],
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given weekdays at 09:00 from Saturday 30 March, with Monday 1 April excluded
    timing = build("daily-weekdays")
    holiday = Calendar.build("es", ZONE, dates=["2030-04-01"])
    put(store, 2, timing, calendars=[holiday], on_excluded=policy)
    scheduler = beat()
    # When beat looks at every minute until Tuesday 09:00
    while clock.now < datetime(2030, 4, 2, 7, 0, 30, tzinfo=UTC):
        scheduler.tick()
        clock.now += timedelta(minutes=1)
    scheduler.tick()
    # Then Monday's fire did not run, and Tuesday's ran once
    runs = [h["bgproc_scheduled_at"] for h in published(client, settings)]
    zone = ZoneInfo(ZONE)
    assert [datetime.fromisoformat(r).astimezone(zone).isoformat() for r in runs] == expected
    assert scheduler.misfires == []


def test_next_business_day_moves_a_saturday_fire_to_monday_in_beat(
    store: EntryStore,
    beat: Callable[[], RecordingScheduler],
    clock: Clock,
    client: redis.Redis,
    settings: Settings,
) -> None:
    # Given a weekly plan on Saturdays at 10:00 that moves what falls on a weekend
    timing = Timing.build(
        {"timing": "scheduled", "frequency": "weekly", "days": "sat", "at": "10:00", "tz": ZONE},
        T0, "UTC",
    ).anchored(T0)  # fmt: skip
    put(store, 4, timing, on_excluded="next-business-day")
    scheduler = beat()
    # When beat looks at the Saturday's fire time, then at Monday's
    for now in (T0, datetime(2030, 4, 6, 8, 0, tzinfo=UTC), datetime(2030, 4, 8, 7, 59, 59,
                                                                      tzinfo=UTC)):
        clock.now = now
        scheduler.tick()
        assert published(client, settings) == []
    clock.now = datetime(2030, 4, 8, 8, 0, 1, tzinfo=UTC)
    scheduler.tick()
    # Then the fire ran once, on Monday at 10:00 Madrid, and the next is the next Monday
    runs = [h["bgproc_scheduled_at"] for h in published(client, settings)]
    assert runs == [datetime(2030, 4, 8, 8, 0, tzinfo=UTC).isoformat()]
    assert store.next_fire(4) == datetime(2030, 4, 15, 8, 0, tzinfo=UTC)
    assert scheduler.misfires == []
