"""Giving back a dead worker's messages, on real Redis with kombu's own unacked entries.

A message is sent with the installation's Celery app and taken by a consumer process that
then dies without acknowledging it (``os._exit``): kombu's ``unacked`` hash and index hold
it exactly as a SIGKILLed worker leaves them. Each test has its own key prefix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import Engine

from bgproc.runtime.app import create_app
from bgproc.runtime.redelivery import SLACK_S, Redelivery, may_be_given_back
from bgproc.services.control import Control
from bgproc.settings import DEFAULT_QUEUE, RUN_TASK, Settings
from bgproc.statuses import Channel, RunStatus
from bgproc.store.runs import RunStore
from bgproc.store.transitions import NewRun

BROKER = "redis://127.0.0.1:6379/0"
AFTER_S = 3.0
# A consumer that takes one message of the default queue and dies holding it.
TAKE_AND_DIE = """
import os, sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={"global_keyprefix": sys.argv[2]}) as conn:
    channel = conn.channel()
    message = channel.basic_get(sys.argv[3], no_ack=False)
    assert message is not None, "no message to take"
    os._exit(0)
"""


@pytest.fixture
def settings() -> Iterator[Settings]:
    """This test's installation; every key of its prefix is deleted afterwards."""
    prefix = f"redeliver-{uuid.uuid4().hex[:10]}:"
    yield Settings(broker_url=BROKER, key_prefix=prefix, redeliver_after_s=AFTER_S)
    client = redis.Redis.from_url(BROKER)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _redelivery(settings: Settings) -> Redelivery:
    broker = redis.Redis.from_url(BROKER)
    return Redelivery(broker, Control(broker, broker, settings), settings)


def _held_by_a_dead_consumer(settings: Settings) -> str:
    """Send one run message and let a consumer die holding it; its task id."""
    app = create_app(settings)
    task_id = str(uuid.uuid4())
    app.send_task(RUN_TASK, task_id=task_id, queue=DEFAULT_QUEUE,
                  headers={"bgproc_run_id": "1"})  # fmt: skip
    app.pool.force_close_all()
    subprocess.run([sys.executable, "-c", TAKE_AND_DIE, BROKER, settings.key_prefix,
                    DEFAULT_QUEUE], check=True, timeout=60)  # fmt: skip
    return task_id


def _queued(settings: Settings) -> list[dict[str, object]]:
    client = redis.Redis.from_url(BROKER)
    return [json.loads(m) for m in client.lrange(settings.key_prefix + DEFAULT_QUEUE, 0, -1)]


def _unacked(settings: Settings) -> int:
    return int(redis.Redis.from_url(BROKER).hlen(settings.key_prefix + "unacked"))


def test_two_concurrent_sweepers_give_a_message_back_exactly_once(settings: Settings) -> None:
    # Given a message held by a consumer that died, and two live workers sweeping at once
    task_id = _held_by_a_dead_consumer(settings)
    assert _queued(settings) == [] and _unacked(settings) == 1
    sweepers = [_redelivery(settings), _redelivery(settings)]
    now_s = time.time() + SLACK_S + 1
    given: list[str] = []
    start = threading.Barrier(len(sweepers))

    def sweep(redelivery: Redelivery, name: str) -> None:
        for _ in range(2):  # an orphan is given back when seen so on two rounds in a row
            redelivery.announce(name, [], now_s)
            start.wait()
            given.extend(redelivery.give_back_orphans(now_s))

    # When both sweep, round for round
    threads = [threading.Thread(target=sweep, args=(r, f"w{i}@h")) for i, r in
               enumerate(sweepers)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then it is back in its queue once, flagged redelivered, and no longer unacked
    assert given == [task_id]
    (message,) = _queued(settings)
    assert message["headers"]["id"] == task_id
    assert message["properties"]["delivery_info"]["redelivered"] is True
    assert _unacked(settings) == 0


def test_a_message_a_live_worker_holds_or_just_took_is_not_given_back(
    settings: Settings,
) -> None:
    # Given a message held by a worker that says so
    task_id = _held_by_a_dead_consumer(settings)
    sweeper, holder = _redelivery(settings), _redelivery(settings)
    now_s = time.time() + SLACK_S + 1
    for _ in range(3):
        holder.announce("holder@h", [task_id], now_s)
        sweeper.announce("sweeper@h", [], now_s)
        assert sweeper.give_back_orphans(now_s) == []
    assert sweeper.whereabouts(task_id, [DEFAULT_QUEUE]).describe() == "held by worker holder@h"

    # When the holder falls silent: not before its word is older than the setting
    later_s = now_s + AFTER_S / 2
    sweeper.announce("sweeper@h", [], later_s)
    assert sweeper.give_back_orphans(later_s) == []
    dead_s = now_s + AFTER_S + 0.1
    for _ in range(2):
        sweeper.announce("sweeper@h", [], dead_s)
        given = sweeper.give_back_orphans(dead_s)
    assert given == [task_id]
    assert sweeper.whereabouts(task_id, [DEFAULT_QUEUE]).describe() == (
        f"waiting in queue {DEFAULT_QUEUE}"
    )


def test_a_message_delivered_after_a_live_word_is_not_taken_for_an_orphan(
    settings: Settings,
) -> None:
    # Given a worker whose last word is older than the delivery (it will list it next time)
    spoke_s = time.time() - 1
    _held_by_a_dead_consumer(settings)
    sweeper = _redelivery(settings)
    for _ in range(3):
        sweeper.announce("sweeper@h", [], spoke_s)
        assert sweeper.give_back_orphans(spoke_s + 0.5) == []
    assert _unacked(settings) == 1
    assert sweeper.whereabouts("no-such-task", [DEFAULT_QUEUE]).place == "nowhere"


def test_a_worker_silent_since_a_message_arrived_must_claim_its_start(settings: Settings) -> None:
    redelivery = _redelivery(settings)
    assert redelivery.safe_until(100.0) is None  # it has not spoken yet
    redelivery.announce("w@h", [], 100.0)
    redelivery.announce("w@h", [], 100.5)
    # received after its first word, no silence since: safe until its word could age out
    assert redelivery.safe_until(100.2) == 100.5 + AFTER_S - SLACK_S
    assert not may_be_given_back(redelivery.safe_until(100.2), 101.0)
    assert may_be_given_back(redelivery.safe_until(100.2), 100.5 + AFTER_S)
    # frozen for longer than the setting allows, then awake: what it received before is suspect
    redelivery.announce("w@h", [], 100.5 + AFTER_S)
    assert redelivery.safe_until(101.0) is None
    assert redelivery.safe_until(101.0 + AFTER_S) is not None


@pytest.mark.parametrize("status", [RunStatus.queued, RunStatus.lost])
def test_of_two_copies_only_one_claims_the_start(engine: Engine, status: RunStatus) -> None:
    now = datetime.now(UTC)
    runs = RunStore(engine)
    run_id = runs.record(NewRun(process="sample.echo", params={}, status=status,
                                channel=Channel.direct, scheduled_at=now, queued_at=now,
                                task_id=str(uuid.uuid4())))  # fmt: skip
    claims = [runs.claim_start(run_id, status, 1, 2, f"w{i}@h") for i in range(2)]
    assert claims == [True, False]
    run = runs.get(run_id)
    assert run.status is RunStatus.processing and run.attempt == 2 and run.worker == "w0@h"


def test_a_message_given_back_has_a_new_delivery_tag(settings: Settings) -> None:
    """Its old holder, if it wakes, restores or acks the old tag: that must not touch it."""
    _held_by_a_dead_consumer(settings)
    client = redis.Redis.from_url(BROKER)
    (old_tag,) = client.hkeys(settings.key_prefix + "unacked")
    sweeper = _redelivery(settings)
    now_s = time.time() + SLACK_S + 1
    for _ in range(2):
        sweeper.announce("sweeper@h", [], now_s)
        sweeper.give_back_orphans(now_s)
    (message,) = _queued(settings)
    assert message["properties"]["delivery_tag"] not in ("", old_tag.decode())
