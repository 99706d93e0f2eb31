"""A standalone worker and two beats ride out Redis restarts with data (1, 10 and 60 s down)
and a beat SIGSTOPped: `bgproc health` and `monitor beats` tell. No supervisor anywhere.

After an outage longer than the lock timeout either beat may hold the lock; the other
stands by. Whichever it is, no due time fires twice and none is lost.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from bgproc.services.control import BEAT_STALE_S
from tests.e2e.conftest import Stack
from tests.e2e.outage_checks import (
    EVERY_SECOND,
    assert_every_due_once,
    assert_no_traceback,
    assert_on_time,
    first_fire_after,
    now,
    settled,
)
from tests.e2e.services import PrivateRedis
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

LEASE_S = 3
OUTAGES_S = (1, 10, 60)
CLI_SLACK_S = 2.0  # one `bgproc health` run on a loaded machine: the probe's own time


def test_a_worker_and_two_beats_ride_out_redis_restarts(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    worker = stack.worker("w1", ready=False)
    beats = [stack.beat("beat-a"), stack.beat("beat-b", holder=False)]
    worker.wait_log(" ready.")
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the first outage")
    lateness = {}
    for down_s in OUTAGES_S:
        private_redis.restart_with_data(down_s)
        run = first_fire_after(stack, every, now())
        assert_on_time(run)
        lateness[down_s] = (run.started_at - run.scheduled_at).total_seconds()
        assert all(p.alive() for p in (worker, *beats)), [p.tail() for p in beats]
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)
    assert_every_due_once(runs, every)
    assert_no_traceback([worker, *beats])
    print(f"\nworker + 2 beats: first fire after each outage started late by {lateness} s")


def test_health_fails_within_5_s_of_the_beat_stopping_and_recovers(stack: Stack) -> None:
    worker, beat = stack.worker_and_beat()
    wait_until(lambda: stack.cli("health", check=False).code == 0, 20, 0.2, "a healthy start")
    assert "holds the lock" in stack.cli("monitor", "beats").out

    os.kill(beat.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        failing = wait_until(lambda: (r := stack.cli("health", "--json", check=False)).code != 0
                             and r, BEAT_STALE_S + CLI_SLACK_S, 0.2, "health to fail")  # fmt: skip
        assert time.monotonic() - stopped <= BEAT_STALE_S + CLI_SLACK_S
        scheduler = {c["name"]: c for c in failing.json()["checks"]}["scheduler"]
        assert not scheduler["ok"] and "stale" in scheduler["detail"], scheduler
        shown = stack.cli("monitor", "beats", "--json").json()
        assert [b["stale"] for b in shown] == [True], shown
        assert "STALE" in stack.cli("monitor", "beats").out
        assert "Scheduler:" in stack.cli("monitor", "workers").out
    finally:
        os.kill(beat.pid, signal.SIGCONT)
    wait_until(lambda: stack.cli("health", check=False).code == 0, 20, 0.2, "health again")
    assert worker.alive() and beat.alive()
