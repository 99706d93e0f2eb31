"""``bgproc up`` rides out Redis outages in its own process: restarts with data after 1, 10
and 60 s down, and a start while Redis is down; its beat killed is started again. No
supervisor anywhere.

A 2-second run goes through each short outage and must end ``success``: a lease that could
not be renewed because Redis was away is not a dead worker.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest

from bgproc.runtime.app import BEAT_LOCK_TIMEOUT_S
from bgproc.statuses import RunStatus
from tests.e2e.conftest import WORKER_OPTIONS, Stack
from tests.e2e.outage_checks import (
    EVERY_SECOND,
    assert_every_due_once,
    assert_no_traceback,
    assert_on_time,
    first_fire_after,
    now,
    settled,
)
from tests.e2e.services import PrivatePostgres, PrivateRedis, wait_s
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

LEASE_S = 3
OUTAGES_S = (1, 10, 60)


def test_up_rides_out_redis_restarts_of_1_10_and_60_seconds(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    up = stack.up()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the first outage")
    sleepers = []
    lateness = {}
    for down_s in OUTAGES_S:
        if down_s <= 10:  # a run that is going through the outage (its lease expires meanwhile)
            sleepers.append(int(stack.cli("run", "sample.sleep", "--param", "seconds=3").out))
            wait_until(lambda: stack.runs()[-1].started_at if stack.runs() else None, 10, 0.1)
        private_redis.restart_with_data(down_s)
        back = now()
        run = first_fire_after(stack, every, back)
        assert_on_time(run)
        lateness[down_s] = (run.started_at - run.scheduled_at).total_seconds()
        assert up.alive(), up.tail()
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    for run_id in sleepers:
        (run,) = [r for r in runs if r.id == run_id]
        assert run.status is RunStatus.success, (run.status, run.error)
    assert_no_traceback([up])
    print(f"\nup: first fire after each outage started late by {lateness} s")


def test_up_started_while_redis_is_down_waits_for_it(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    later = stack.create("sample.echo", "--timing", "later", "--start", "+5s")
    private_redis.stop_with_data()
    up = stack.spawn("up", "up", "--concurrency", "2", "-n", "up@%h", *WORKER_OPTIONS)
    wait_s(10)
    assert up.alive(), up.tail()
    private_redis.start()
    run = first_fire_after(stack, every, now())
    assert_on_time(run)
    wait_until(lambda: any(r.status is RunStatus.success for r in stack.runs(later)), 20, 0.1,
               "the one-shot due in the outage to run once")  # fmt: skip
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    assert sum(r.status is RunStatus.success for r in runs if r.request_id == later) == 1
    assert_no_traceback([up])


def test_up_starts_its_beat_again_when_it_dies(stack: Stack) -> None:
    up = stack.up()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the kill")
    (beat,) = stack.cli("monitor", "beats", "--json").json()
    os.kill(beat["pid"], signal.SIGKILL)
    killed = now()
    up.wait_log("starting it again", 10)
    # the new beat takes the lock when the dead one's expires (10 s), then fires on
    wait_until(lambda: [r for r in stack.fired(every) if r.started_at > killed + timedelta(
        seconds=BEAT_LOCK_TIMEOUT_S)], BEAT_LOCK_TIMEOUT_S + 20, 0.2, "fires after the restart")
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    assert up.alive()


def test_up_rides_out_redis_restarted_empty(stack: Stack, private_redis: PrivateRedis) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    up = stack.up()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the outage")
    private_redis.kill()  # every key lost: entries, lock, queues, leases
    wait_s(5)
    private_redis.start()
    assert_on_time(first_fire_after(stack, every, now()))  # the entry rebuilt by beat itself
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    assert up.alive()
    assert_no_traceback([up])


def test_up_rides_out_postgresql_restarted(
    stack: Stack, private_postgres: PrivatePostgres
) -> None:
    up = stack.up()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the outage")
    private_postgres.stop("immediate")
    wait_s(5)
    private_postgres.start()
    assert_on_time(first_fire_after(stack, every, now()))
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    assert up.alive()
    assert_no_traceback([up], processes=("Beat", "MainProcess"))
