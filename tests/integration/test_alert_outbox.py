"""The alert outbox on SQLite and PostgreSQL: an event is stored with its status change,
once however many writers race, and claimed by one notifier at a time (again after its
lease if that notifier died)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import Engine, select

from bgproc.runtime.recorder import RunRecorder
from bgproc.runtime.sweeper import sweep
from bgproc.statuses import Channel, RunStatus
from bgproc.store.alerts import claim_due, mark_failed, mark_sent
from bgproc.store.db import reading
from bgproc.store.models import AlertEvent
from bgproc.store.runs import RunStore
from bgproc.store.transitions import NewRun, RunOutcome, RunStart

BROKER = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client() -> Iterator[tuple[redis.Redis, str]]:
    connection = redis.Redis.from_url(BROKER)
    prefix = f"alert-{uuid.uuid4().hex[:10]}:"
    yield connection, prefix
    keys = list(connection.scan_iter(match=f"{prefix}*"))
    if keys:
        connection.delete(*keys)
    connection.close()


def _run(engine: Engine, status: RunStatus = RunStatus.queued, **extra: object) -> int:
    now = datetime.now(UTC)
    return RunStore(engine).record(NewRun(
        process="sample.fail", params={}, status=status, channel=Channel.direct,
        scheduled_at=now, queued_at=now, task_id=str(uuid.uuid4()), **extra,  # type: ignore[arg-type]
    ))  # fmt: skip


def _events(engine: Engine) -> list[tuple[int, str]]:
    with reading(engine) as connection:
        rows = connection.execute(select(AlertEvent.run_id, AlertEvent.event)).all()
    return sorted((row[0], row[1]) for row in rows)


def test_each_alerting_end_is_one_event_written_with_it(
    engine: Engine, client: tuple[redis.Redis, str]
) -> None:
    connection, prefix = client
    store = RunStore(engine)
    now = datetime.now(UTC)
    # an error stored by a worker's recorder; a success alerts nothing
    recorder = RunRecorder(engine, connection, prefix + "leases", prefix + "kills", 3.0)
    failed, succeeded = _run(engine), _run(engine)
    for run_id, status in ((failed, RunStatus.error), (succeeded, RunStatus.success)):
        recorder.started(RunStart(run_id, 1, "w1", now), killable=False)
        recorder.ended(RunOutcome(run_id, 1, status, now, 5, error="boom"))
    recorder.flush()
    # lost by the sweep, expired by the expiry sweep, misfired by the beat
    lost = _run(engine)
    connection.zadd(prefix + "leases", {str(lost): now.timestamp() - 1})
    sweep(store, connection, prefix + "leases", now)
    late = _run(engine, start_by=now - timedelta(seconds=5))
    store.expire_late(now)
    misfired = _run(engine, RunStatus.misfired, ended_at=now)

    assert _events(engine) == sorted([(failed, "error"), (lost, "lost"), (late, "expired"),
                                      (misfired, "misfired")])  # fmt: skip


def test_an_event_is_written_once_however_many_writers_race(engine: Engine) -> None:
    # Given runs that several writers end at once (the sweep, a hard time limit, a twin)
    store = RunStore(engine)
    runs = [_run(engine, RunStatus.processing) for _ in range(10)]
    now = datetime.now(UTC)
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def writer() -> None:
        barrier.wait()
        try:
            for run_id in runs:
                store.close_open(run_id, "", RunStatus.lost, now, "lost: racing")
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each run has its one event
    assert failures == []
    assert _events(engine) == [(run_id, "lost") for run_id in runs]
    # And writing it again changes nothing
    store.close_open(runs[0], "", RunStatus.lost, now, "again", (RunStatus.lost,))
    assert len(_events(engine)) == len(runs)


def test_notifiers_claim_each_row_once_and_a_dead_ones_row_after_its_lease(
    engine: Engine,
) -> None:
    for _ in range(6):
        _run(engine, RunStatus.misfired)
    now = datetime.now(UTC)
    barrier = threading.Barrier(3)
    claims: list[list[int]] = []

    def notifier() -> None:
        barrier.wait()
        claims.append([row.id for row in claim_due(engine, now, lease_s=30)])

    threads = [threading.Thread(target=notifier) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = sorted(i for batch in claims for i in batch)
    assert len(taken) == 6 and len(set(taken)) == 6  # each row claimed once

    # A live lease keeps the rows; once it is over they are claimed again (their notifier
    # died mid-send), and only the new claim may mark a row sent
    assert claim_due(engine, now + timedelta(seconds=10), lease_s=30) == []
    later = now + timedelta(seconds=31)
    again = claim_due(engine, later, lease_s=30)
    assert len(again) == 6
    first = again[0]
    assert mark_sent(engine, first, later)
    assert not mark_sent(engine, first, later)  # once
    # A failed try keeps what went through and is due again later, not before
    second = again[1]
    mark_failed(engine, second, {"webhook"}, later + timedelta(seconds=60), "smtp down")
    retried = [row for row in claim_due(engine, later + timedelta(seconds=61), 30)
               if row.id == second.id]  # fmt: skip
    assert retried and retried[0].delivered == frozenset({"webhook"}) and retried[0].tries == 1
