"""Faults survived: Redis restarted empty, PostgreSQL restarted, 50 SIGKILLs of pool children.

Each test breaks servers or processes of its own (private Redis and PostgreSQL from
``services.py``), then proves the promise: every planned fire runs once or is recorded
as missed, every started run ends in a terminal status, nothing is doubled.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Stack
from tests.e2e.outage_checks import (
    assert_no_traceback,
    assert_on_time,
    first_fire_after,
    settled,
)
from tests.e2e.services import PrivatePostgres, PrivateRedis, wait_s
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ONE_SECOND = timedelta(seconds=1)
EVERY_SECOND = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "1")
LEASE_S = 3
OUTAGE_S = 4


def _no_due_twice(runs: list[ProcessRun]) -> None:
    started = Counter((r.request_id, r.scheduled_at) for r in runs
                      if r.request_id and r.started_at and r.status is not RunStatus.lost)
    doubled = [key for key, count in started.items() if count > 1]
    assert not doubled, f"fires run twice: {doubled}"


def _accounted(runs: list[ProcessRun], request_id: int) -> list[datetime]:
    """The due times a request's runs account for (run, or covered by a misfired record)."""
    dues: set[datetime] = set()
    for run in runs:
        if run.request_id != request_id:
            continue
        if run.status is RunStatus.misfired and "fire(s) from" in (run.error or ""):
            count = int((run.error or "").split(" fire(s) from")[0].rsplit(" ", 1)[-1])
            dues |= {run.scheduled_at + k * ONE_SECOND for k in range(count)}
        elif run.scheduled_at is not None:
            dues.add(run.scheduled_at)
    return sorted(dues)


def test_redis_restarted_empty_while_requests_are_scheduled(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    stack.worker("w1")
    beat = stack.beat()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    later = stack.create("sample.echo", "--timing", "later", "--start", f"+{OUTAGE_S + 3}s")
    wait_until(lambda: len(stack.fired(every)) >= 3, 20, 0.1, "three fires before the fault")

    # Redis dies and comes back empty: entries, schedule, lock, queues, leases all gone
    private_redis.kill()
    restarted_at = datetime.now(UTC)
    wait_s(OUTAGE_S)
    private_redis.start()
    assert beat.alive(), beat.tail()  # no supervisor needed: beat rode the outage out
    synced = stack.cli("sync", "--json").json()
    assert every in synced["rebuilt"] or synced["kept"] >= 1, synced  # (beat may be first)

    def resumed() -> list[ProcessRun]:
        return [r for r in stack.fired(every) if r.started_at and r.started_at > restarted_at]

    wait_until(lambda: len(resumed()) >= 3, 30, 0.2, "three fires after the restart")
    wait_until(lambda: any(r.status is RunStatus.success for r in stack.runs(later)), 30, 0.2,
               "the one-shot due during the outage to run once")  # fmt: skip
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack, 30)
    _no_due_twice(runs)
    assert sum(r.status is RunStatus.success for r in runs if r.request_id == later) == 1
    dues = _accounted(runs, every)
    assert dues == [dues[0] + k * ONE_SECOND for k in range(len(dues))], "a fire was lost"
    by_status = dict(Counter(r.status.value for r in runs))
    print(f"\nRedis restarted empty: {len(runs)} runs, {by_status}")


def test_postgresql_restarted_while_runs_go(
    stack: Stack, private_postgres: PrivatePostgres
) -> None:
    server = private_postgres
    stack.worker("w1", concurrency=3)
    beat = stack.beat()
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    sleepers = [int(stack.cli("run", "sample.sleep", "--param", "seconds=6").out)
                for _ in range(2)]  # fmt: skip
    wait_until(lambda: len(stack.fired(every)) >= 2, 20, 0.1, "fires before the fault")

    server.stop("immediate")  # every connection dropped, as in a crash
    wait_s(OUTAGE_S)
    server.start()
    assert_on_time(first_fire_after(stack, every, datetime.now(UTC)))

    wait_until(lambda: len([r for r in stack.fired(every) if r.status is RunStatus.success])
               >= 8, 40, 0.2, "fires after PostgreSQL came back")  # fmt: skip
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack, 60)
    _no_due_twice(runs)
    for run_id in sleepers:
        (run,) = [r for r in runs if r.id == run_id]
        assert run.status is RunStatus.success, run.error  # ran through the outage
    dues = _accounted(runs, every)
    assert dues == [dues[0] + k * ONE_SECOND for k in range(len(dues))], "a fire was lost"
    assert_no_traceback([beat])
    by_status = dict(Counter(r.status.value for r in runs))
    print(f"\nPostgreSQL restarted: {len(runs)} runs, {by_status}")


def test_beat_and_worker_started_while_postgresql_is_down_wait_for_it(
    stack: Stack, private_postgres: PrivatePostgres
) -> None:
    server = private_postgres
    every = stack.create("sample.echo", *EVERY_SECOND, "--start", "+1s")
    server.stop("immediate")
    worker, beat = stack.worker("w1", ready=False), stack.beat(holder=False)
    for proc in (worker, beat):
        proc.wait_log("waiting for it")
    wait_s(OUTAGE_S)
    server.start()
    beat.wait_log("beat: Acquired lock")
    worker.wait_log(" ready.")
    wait_until(lambda: any(r.status is RunStatus.success for r in stack.fired(every)), 30,
               0.2, "a fire once the database is back")  # fmt: skip
    assert_no_traceback([beat])


def _children(pid: int) -> list[int]:
    """The pool children of a worker's main process."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_fifty_sigkills_of_pool_children_leave_no_run_stuck_or_doubled(stack: Stack) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    worker = stack.worker("w1", concurrency=2)
    stack.beat()
    every = stack.create("sample.sleep", *EVERY_SECOND, "--param", "seconds=0.4", "--start", "+1s")
    wait_until(lambda: stack.fired(every), 20, 0.1, "a first fire")

    kills = 0
    while kills < 50:
        for child in _children(worker.pid):
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
                kills += 1
                break
        wait_s(0.3)  # the pace of the fault: Celery replaces each child in the meantime
        assert worker.alive(), worker.tail()
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack, LEASE_S + 60)

    _no_due_twice(runs)
    assert len({r.task_id for r in runs}) == len(runs), "a message recorded twice"
    by_status = Counter(r.status.value for r in runs)
    assert set(by_status) <= {"success", "lost", "skipped", "misfired"}, by_status
    assert by_status["success"] > 0
    redone = [r for r in runs if r.attempt > 1]
    # a redelivered run ran again, or was lost again, or found its request unscheduled
    assert {r.status for r in redone} <= {RunStatus.success, RunStatus.lost, RunStatus.skipped}
    print(f"\n50 SIGKILLs: {len(runs)} runs, {dict(by_status)}, {len(redone)} redelivered")
