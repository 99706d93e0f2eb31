"""Every run status arising for real (design §4), on real workers, Redis and SQL.

success, error (with its traceback), killed (``monitor kill``), a kill refused, a hard
time limit (``error``, never left ``processing``), a pool child SIGKILLed (``lost``, then
redelivered as attempt 2), a whole worker SIGKILLed (``lost`` once its lease expires), and
``monitor stats`` agreeing with ``monitor list``. Skipped and misfired runs are shown
arising in test_scheduling.py and test_failover.py.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from typing import Any

import pytest

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Proc, Stack
from tests.waiting import wait_until

IMPORTS = "tests.e2e.fault_processes"
LEASE_S = 3  # BGPROC_RUN_LEASE_S of these tests: a dead worker's run is lost soon
# A lease expires LEASE_S after its last renewal; a live worker sweeps every LEASE_S / 3.
LOST_WITHIN_S = LEASE_S + LEASE_S / 3 + 10  # + slack for a loaded 2-core machine
RUN_TIMEOUT_S = 60
PID = re.compile(r"pid (\d+)")


def _setup(stack: Stack) -> None:
    stack.env["BGPROC_IMPORTS"] = IMPORTS
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)


def _launch(stack: Stack, process: str, *params: str) -> int:
    args = [a for p in params for a in ("--param", p)]
    out = stack.cli("run", process, *args).out.strip()
    assert out.isdigit(), out
    return int(out)


def _run(stack: Stack, run_id: int) -> ProcessRun:
    (row,) = [r for r in stack.runs() if r.id == run_id]
    return row


def _in_status(stack: Stack, run_id: int, *statuses: RunStatus, timeout_s: float = RUN_TIMEOUT_S,
               ) -> ProcessRun:
    def reached() -> ProcessRun | None:
        row = _run(stack, run_id)
        return row if row.status in statuses else None

    names = "/".join(s.value for s in statuses)
    return wait_until(reached, timeout_s, 0.1, f"run {run_id} to be {names}")


def _ended(stack: Stack, run_id: int, timeout_s: float = RUN_TIMEOUT_S) -> ProcessRun:
    ended = [s for s in RunStatus if s not in (RunStatus.queued, RunStatus.processing)]
    return _in_status(stack, run_id, *ended, timeout_s=timeout_s)


def test_success_error_killed_and_a_hard_time_limit(any_stack: Stack) -> None:
    stack = any_stack
    _setup(stack)
    stack.worker(concurrency=3)
    ok = _launch(stack, "sample.echo", "a=1")
    failed = _launch(stack, "sample.fail", "message=boom")
    sleeper = _launch(stack, "sample.sleep", "seconds=60")
    overrun = _launch(stack, "faults.overrun")

    # success: every time recorded, in order, on the worker, first attempt
    run = _ended(stack, ok)
    assert run.status is RunStatus.success and run.result == {"a": "1"}
    assert run.scheduled_at <= run.queued_at <= run.started_at <= run.ended_at
    assert run.duration_ms is not None and run.worker and run.attempt == 1

    # error: its type, message and traceback
    run = _ended(stack, failed)
    assert run.status is RunStatus.error and run.error == "RuntimeError: boom"
    assert "Traceback" in (run.traceback or "") and "raise RuntimeError(message)" in run.traceback

    # killed: a killable run stops at `monitor kill`
    _in_status(stack, sleeper, RunStatus.processing)
    killed = stack.cli("monitor", "kill", str(sleeper), "--timeout", "30")
    assert killed.out.strip() == f"run {sleeper} killed"
    run = _run(stack, sleeper)
    assert run.status is RunStatus.killed and "killed on request" in (run.error or "")
    assert run.duration_ms is not None and run.duration_ms < 30_000
    assert "stopped after" in (run.log or "")

    # a process that is not killable: refused, exit 4, and it runs on to success
    stubborn = _launch(stack, "faults.stubborn", "seconds=12")
    _in_status(stack, stubborn, RunStatus.processing)
    refused = stack.cli("monitor", "kill", str(stubborn), check=False)
    assert refused.code == 4 and refused.err.startswith("Error: ") and "not killable" in refused.err
    assert _ended(stack, stubborn).status is RunStatus.success
    again = stack.cli("monitor", "kill", str(stubborn), check=False)
    assert again.code == 4 and "already ended (success)" in again.err

    # a hard time limit kills the child: the main process records it, never `processing`
    run = _ended(stack, overrun)
    assert run.status is RunStatus.error and "hard time limit" in (run.error or ""), run.error

    # stats agrees with list
    listed = stack.cli("monitor", "list", "--limit", "1000", "--json").json()
    counted = Counter((r["process"], r["status"]) for r in listed)
    stats = stack.cli("monitor", "stats", "--json").json()
    for row in stats:
        for status, count in row["counts"].items():
            assert counted[(row["process"], status)] == count, (row, counted)
    assert sum(row["total"] for row in stats) == len(listed) == 5


def test_an_ad_hoc_run_killed_while_queued_never_starts(stack: Stack) -> None:
    """Its message carries its ticket, so no read would see the kill: Redis must."""
    # Given a killable ad-hoc run queued with no worker yet, killed at once
    _setup(stack)
    doomed = _launch(stack, "sample.sleep", "seconds=30")
    killed = stack.cli("monitor", "kill", str(doomed), "--timeout", "0")
    assert killed.out.strip() == f"run {doomed} killed"
    # When a worker comes and takes its message (and the next one)
    stack.worker()
    after = _launch(stack, "sample.echo", "a=1")
    assert _ended(stack, after).status is RunStatus.success
    # Then it never started, stays killed, and its kill request was used up
    run = _run(stack, doomed)
    assert run.status is RunStatus.killed and run.started_at is None and not run.log
    wait_until(lambda: stack.cli("monitor", "queues", "--json").json()["unacked"] == 0,
               RUN_TIMEOUT_S, 0.2, "both messages acknowledged")  # fmt: skip
    assert not [k for k in stack.redis_keys() if k.endswith("runs:kills")]


def test_an_ad_hoc_run_of_a_process_that_is_not_killable_never_looks_for_a_kill(
    stack: Stack,
) -> None:
    """``monitor kill`` refuses such a process, so its worker skips the Redis round trip."""
    # Given an ad-hoc run of a process that is not killable, and a kill request for it
    # that no command could make (monitor kill refuses it)
    _setup(stack)
    run_id = _launch(stack, "sample.echo", "a=1")
    kills = f"{stack.prefix}runs:kills"
    stack.redis.sadd(kills, str(run_id))
    # When a worker takes it, then it runs on its ticket, and the request stays unread
    stack.worker()
    assert _ended(stack, run_id).status is RunStatus.success
    assert stack.redis.smembers(kills) == {str(run_id)}


def test_a_pool_child_killed_mid_run_is_lost_then_run_again_as_attempt_2(stack: Stack) -> None:
    _setup(stack)
    stack.worker(concurrency=1)
    run_id = _launch(stack, "faults.pid", "seconds=3")

    def child_pid() -> int | None:
        match = PID.search(_run(stack, run_id).log or "")
        return int(match[1]) if match else None

    os.kill(wait_until(child_pid, RUN_TIMEOUT_S, 0.1, "the child's pid in the log"),
            signal.SIGKILL)
    run = _in_status(stack, run_id, RunStatus.success)
    assert run.attempt == 2, run
    assert "attempt 1 was lost; attempt 2 starts" in (run.log or ""), run.log
    first, second = PID.findall(run.log or "")
    assert first != second and run.result == {"pid": int(second)}  # a new child ran it


def test_a_worker_killed_whole_leaves_its_run_lost_and_a_live_one_is_never_lost(
    stack: Stack,
) -> None:
    _setup(stack)
    doomed = stack.worker("w1", concurrency=1)
    victim = _launch(stack, "sample.sleep", "seconds=120")
    _in_status(stack, victim, RunStatus.processing)
    survivor_worker = stack.worker("w2", concurrency=1)
    survivor = _launch(stack, "faults.stubborn", f"seconds={LEASE_S * 3}")
    _in_status(stack, survivor, RunStatus.processing)

    doomed.kill9()
    run = _in_status(stack, victim, RunStatus.lost, timeout_s=LOST_WITHIN_S)
    assert "stopped reporting" in (run.error or ""), run.error
    assert run.ended_at is not None and run.attempt == 1

    # the run on the live worker outlives several leases and ends success, never lost
    run = _ended(stack, survivor)
    assert run.status is RunStatus.success and run.worker.startswith("w2@"), run
    assert survivor_worker.alive()


def test_workers_queues_and_watch_show_the_live_workers(stack: Stack) -> None:
    _setup(stack)
    worker: Proc = stack.worker("w1", concurrency=1)
    sleeper = _launch(stack, "sample.sleep", "seconds=30")
    _in_status(stack, sleeper, RunStatus.processing)

    def listed() -> list[dict[str, Any]]:
        return stack.cli("monitor", "workers", "--json").json()

    (found,) = wait_until(listed, 15, 0.5, "w1 to announce itself")
    assert found["name"].startswith("w1@") and found["pool"] == "prefork"
    assert found["running"] == [sleeper] and "celery" in found["queues"]
    queues = {q["name"]: q for q in stack.cli("monitor", "queues", "--json").json()["queues"]}
    assert queues["celery"]["consumers"] == [found["name"]]
    table = stack.cli("monitor", "workers").out
    assert found["name"] in table and f"run {sleeper} sample.sleep" in table
    watched = stack.cli("monitor", "watch", "--count", "1").out
    assert "Workers" in watched and "Latest runs" in watched and "sample.sleep" in watched

    stack.cli("monitor", "kill", str(sleeper))
    worker.stop()
    assert listed() == [], "a worker that stopped cleanly is no longer listed"


@pytest.mark.parametrize("bad", ["0", "x", "99999999999999"])
def test_kill_of_a_bad_or_unknown_id_is_one_line(stack: Stack, bad: str) -> None:
    refused = stack.cli("monitor", "kill", bad, check=False)
    assert refused.code == 2 and refused.err.startswith("Error: run id")
    missing = stack.cli("monitor", "kill", "999", check=False)
    assert missing.code == 3 and missing.err.strip() == "Error: run 999 not found"
