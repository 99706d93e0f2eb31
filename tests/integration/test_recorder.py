"""The run recorder and the sweep, on real Redis and on SQLite and PostgreSQL alike.

The recorder batches a run's changes off the run's thread; these tests drive it directly
(``flush``) and through its writer thread, and read the rows and Redis back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import Engine, update

from bgproc.registry import ProcessContext
from bgproc.runtime.recorder import RunRecorder
from bgproc.runtime.sweeper import sweep, sweep_unsent
from bgproc.services.control import Control
from bgproc.settings import Settings
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun
from bgproc.store.runs import RunStore
from bgproc.store.transitions import NewRun, RunOutcome, RunStart

BROKER = "redis://127.0.0.1:6379/0"
LEASE_S = 3.0


@pytest.fixture
def client() -> Iterator[tuple[redis.Redis, str]]:
    """Redis and this test's own key prefix; every key of it is deleted afterwards."""
    connection = redis.Redis.from_url(BROKER)
    prefix = f"rec-{uuid.uuid4().hex[:10]}:"
    yield connection, prefix
    keys = list(connection.scan_iter(match=f"{prefix}*"))
    if keys:
        connection.delete(*keys)
    connection.close()


@pytest.fixture
def recorder(engine: Engine, client: tuple[redis.Redis, str]) -> RunRecorder:
    connection, prefix = client
    return RunRecorder(
        engine, connection, prefix + "leases", prefix + "kills", LEASE_S, flush_interval_s=0.01
    )


def _queued(engine: Engine) -> int:
    now = datetime.now(UTC)
    return RunStore(engine).record(NewRun(
        process="sample.echo", params={}, status=RunStatus.queued, channel=Channel.direct,
        scheduled_at=now, queued_at=now, task_id=str(uuid.uuid4()),
    ))  # fmt: skip


def test_a_run_is_stored_in_order_with_its_lease_given_then_dropped(
    engine: Engine, recorder: RunRecorder
) -> None:
    run_id = _queued(engine)
    started = datetime.now(UTC)
    recorder.started(RunStart(run_id, 1, "w", started), False)
    recorder.append_log(run_id, "one\n")
    recorder.flush()
    view = RunStore(engine).get(run_id)
    assert view.status is RunStatus.processing and view.worker == "w" and view.log == "one\n"
    expiry = recorder.redis.zscore(recorder.leases_key, str(run_id))
    assert expiry is not None and expiry > time.time()

    recorder.append_log(run_id, "two\n")
    recorder.ended(RunOutcome(run_id, 1, RunStatus.success, datetime.now(UTC), result={"a": 1}))
    recorder.flush()
    view = RunStore(engine).get(run_id)
    assert view.status is RunStatus.success and view.result == {"a": 1}
    assert view.log == "one\ntwo\n" and view.attempt == 1
    assert recorder.redis.zscore(recorder.leases_key, str(run_id)) is None
    assert list(recorder.running()) == []


def test_the_writer_thread_stores_without_being_asked_and_renews_the_lease(
    engine: Engine, recorder: RunRecorder
) -> None:
    run_id = _queued(engine)
    recorder.started(RunStart(run_id, 1, "w", datetime.now(UTC)), True)
    deadline = time.monotonic() + 10
    while recorder.redis.zscore(recorder.leases_key, str(run_id)) is None:
        assert time.monotonic() < deadline, "no lease was given"
        time.sleep(0.02)
    first = recorder.redis.zscore(recorder.leases_key, str(run_id))
    while recorder.redis.zscore(recorder.leases_key, str(run_id)) == first:
        assert time.monotonic() < deadline, "the lease was not renewed"
        time.sleep(0.05)
    assert RunStore(engine).get(run_id).status is RunStatus.processing
    recorder.ended(RunOutcome(run_id, 1, RunStatus.success, datetime.now(UTC)))
    recorder.flush()  # ended: the writer renews nothing after the test's clean-up


def test_a_kill_request_sets_the_runs_stop_event(engine: Engine, recorder: RunRecorder) -> None:
    run_id = _queued(engine)
    stop = recorder.started(RunStart(run_id, 1, "w", datetime.now(UTC)), True)
    recorder.flush()  # the lease is given; kills are looked for from now on
    recorder.redis.sadd(recorder.kills_key, str(run_id))
    assert stop.wait(5), "the kill request was not seen"
    recorder.ended(RunOutcome(run_id, 1, RunStatus.killed, datetime.now(UTC)))
    recorder.flush()
    assert not recorder.redis.sismember(recorder.kills_key, str(run_id)), "the request stays"


def test_a_late_write_of_an_older_attempt_never_undoes_a_decision(
    engine: Engine, recorder: RunRecorder
) -> None:
    run_id = _queued(engine)
    store = RunStore(engine)
    recorder.started(RunStart(run_id, 1, "w", datetime.now(UTC)), False)
    recorder.flush()
    store.close_open(run_id, "", RunStatus.lost, datetime.now(UTC), "lost: swept")
    recorder.ended(RunOutcome(run_id, 1, RunStatus.success, datetime.now(UTC)))
    recorder.flush()
    assert store.get(run_id).status is RunStatus.lost  # attempt 1 was decided by the sweep
    recorder.started(RunStart(run_id, 2, "w", datetime.now(UTC)), False)
    recorder.ended(RunOutcome(run_id, 2, RunStatus.success, datetime.now(UTC)))
    recorder.flush()
    view = store.get(run_id)
    assert view.status is RunStatus.success and view.attempt == 2


def test_a_failed_store_keeps_every_change_for_the_next_flush(
    engine: Engine, recorder: RunRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _queued(engine)
    recorder.started(RunStart(run_id, 1, "w", datetime.now(UTC)), False)
    recorder.append_log(run_id, "a\n")
    real_store = recorder._store

    def down(batch: object) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(recorder, "_store", down)
    with pytest.raises(ConnectionError):
        recorder.flush()
    recorder.append_log(run_id, "b\n")
    recorder.ended(RunOutcome(run_id, 1, RunStatus.success, datetime.now(UTC)))
    monkeypatch.setattr(recorder, "_store", real_store)
    recorder.flush()
    view = RunStore(engine).get(run_id)
    assert view.status is RunStatus.success and view.log == "a\nb\n"


def test_sweeps_mark_each_expired_run_lost_exactly_once(
    engine: Engine, client: tuple[redis.Redis, str]
) -> None:
    connection, prefix = client
    store = RunStore(engine)
    now = datetime.now(UTC)
    expired = [_queued(engine) for _ in range(20)]
    alive = _queued(engine)
    leases = {str(i): (now - timedelta(seconds=1)).timestamp() for i in expired}
    leases[str(alive)] = (now + timedelta(seconds=60)).timestamp()
    connection.zadd(prefix + "leases", leases)

    claimed: list[list[int]] = []

    def one_sweep() -> None:
        claimed.append(sweep(store, connection, prefix + "leases", now))

    threads = [threading.Thread(target=one_sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i for batch in claimed for i in batch) == expired  # each claimed once
    assert all(store.get(i).status is RunStatus.lost for i in expired)
    assert store.get(alive).status is RunStatus.queued
    assert connection.zrange(prefix + "leases", 0, -1) == [str(alive).encode()]


def test_a_run_queued_long_ago_whose_message_is_gone_is_lost_once_checked(
    engine: Engine, client: tuple[redis.Redis, str]
) -> None:
    connection, prefix = client
    store = RunStore(engine)
    settings = Settings(broker_url=BROKER, database_url="sqlite://", key_prefix=prefix)
    control = Control(connection, connection, settings)
    vanished, waiting, recent = (_queued(engine) for _ in range(3))
    message = {"headers": {"id": store.get(waiting).task_id}, "body": ""}
    connection.rpush(prefix + "celery", json.dumps(message))
    later = datetime.now(UTC) + timedelta(seconds=LEASE_S)
    with engine.begin() as db:  # ``recent`` was queued just now, at ``later``
        db.execute(update(ProcessRun).where(ProcessRun.id == recent).values(queued_at=later))

    lost = sweep_unsent(store, lambda: control.message_ids(["celery"]), later, 1.0)

    assert lost == [vanished]
    assert store.get(vanished).status is RunStatus.lost
    assert "never reached a worker" in (store.get(vanished).error or "")
    assert store.get(waiting).status is store.get(recent).status is RunStatus.queued


def test_the_latest_progress_is_stored_once_per_batch_and_read_with_the_log(
    engine: Engine, recorder: RunRecorder
) -> None:
    run_id = _queued(engine)
    recorder.started(RunStart(run_id, 1, "w", datetime.now(UTC)), False)
    ctx = ProcessContext(
        logging.getLogger("test"), run_id, report=lambda p: recorder.progress(run_id, 1, p)
    )
    for done in range(1, 1001):  # one batch whatever the pace: the latest report wins
        ctx.progress(done, 2000, f"item {done}")
    recorder.flush()
    store = RunStore(engine)
    view = store.get(run_id)
    assert view.progress is not None
    assert (view.progress.done, view.progress.total, view.progress.message) == (
        1000, 2000, "item 1000"
    )
    assert view.progress.first_done == 1
    assert view.as_json()["progress"] == view.progress.as_json()
    assert store.read_log(run_id).progress == view.progress

    recorder.ended(RunOutcome(run_id, 1, RunStatus.success, datetime.now(UTC)))
    recorder.flush()
    assert store.get(run_id).progress == view.progress  # the last report stays with the run
