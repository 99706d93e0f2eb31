"""A dead worker's messages come back within seconds, and nothing runs twice (issue 18).

Whole workers are SIGKILLed (their process group) or frozen (SIGSTOP) while holding
messages they received; other workers give those back (``bgproc.runtime.redelivery``). A worker
started with ``--prefetch-multiplier 2`` and its slots busy holds messages it received
but cannot start: the case that used to wait an hour (kombu's visibility timeout).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter

import pytest

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import WORKER_OPTIONS, Proc, Stack
from tests.e2e.services import wait_s
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

IMPORTS = "tests.e2e.fault_processes"
LEASE_S = 3
REDELIVER_AFTER_S = 4  # BGPROC_REDELIVER_AFTER_S: a silent worker's messages come back soon
EVERY_SECOND = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "1")
OPEN = (RunStatus.queued, RunStatus.processing)
RECEIVED = re.compile(r"Task [^\s\[]+\[([0-9a-f-]+)\] received")  # any process's name


def _setup(stack: Stack) -> None:
    stack.env["BGPROC_IMPORTS"] = IMPORTS
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    stack.env["BGPROC_REDELIVER_AFTER_S"] = str(REDELIVER_AFTER_S)


def _holding_worker(stack: Stack, name: str, concurrency: int = 1) -> Proc:
    """Twice as many messages taken as pool slots: with the slots busy, the rest wait,
    received but not started."""
    proc = stack.spawn(name, "worker", "--concurrency", str(concurrency),
                       "--prefetch-multiplier", "2", "-n", f"{name}@%h",
                       *WORKER_OPTIONS)  # fmt: skip
    proc.wait_log(" ready.")
    return proc


def _launch(stack: Stack, process: str, *params: str) -> int:
    args = [a for p in params for a in ("--param", p)]
    return int(stack.cli("run", process, *args).out.strip())


def _run(stack: Stack, run_id: int) -> ProcessRun:
    (row,) = [r for r in stack.runs() if r.id == run_id]
    return row


def _where(stack: Stack, run_id: int) -> dict[str, str]:
    """Where ``monitor show`` says the queued run's message is."""
    return stack.cli("monitor", "show", str(run_id), "--json").json().get("message", {})


def _executions(run: ProcessRun) -> int:
    """How often ``faults.pid`` started for this run (it logs its pid once per start)."""
    return len(re.findall(r"pid \d+", run.log or ""))


def test_ten_sigkills_of_whole_workers_leave_no_received_run_waiting(stack: Stack) -> None:
    seed = random.randrange(1 << 32)
    print(f"\nseed {seed}")
    rng = random.Random(seed)
    _setup(stack)
    stack.beat()
    worker = _holding_worker(stack, "w0", concurrency=4)
    every = stack.create("sample.sleep", *EVERY_SECOND, "--param", "seconds=2", "--start", "+1s")
    wait_until(lambda: stack.fired(every), 20, 0.1, "a first fire")

    waiting: dict[str, str] = {}  # task id -> the killed worker that had received it, unstarted
    for kill in range(10):
        wait_s(rng.uniform(0.5, 3.0))  # the moment of the fault
        worker.kill9()
        last_kill = time.monotonic()
        received = set(RECEIVED.findall(worker.text()))
        for run in stack.runs(every):
            if run.task_id in received and run.status is RunStatus.queued:
                waiting[run.task_id] = f"w{kill}@"
        worker = _holding_worker(stack, f"w{kill + 1}", concurrency=4)
    stack.cli("request", "unschedule", str(every))

    def settled() -> list[ProcessRun] | None:
        runs = stack.runs(every)
        return runs if all(r.status not in OPEN for r in runs) else None

    try:
        runs = wait_until(settled, 30, 0.2, "every run to end within 30 s of the last kill")
    except AssertionError:
        stuck = [(r.id, r.status.value, r.attempt, r.worker, r.task_id, _where(stack, r.id))
                 for r in stack.runs(every) if r.status in OPEN]  # fmt: skip
        raise AssertionError(f"runs still open: {stuck}") from None
    print(f"settled {time.monotonic() - last_kill:.1f} s after the last kill")
    successes = Counter(r.scheduled_at for r in runs if r.status is RunStatus.success)
    assert not [due for due, count in successes.items() if count > 1], "a due time ran twice"
    by_task = {r.task_id: r for r in runs}
    assert waiting, "no kill caught a message received but not started: nothing was shown"
    for task_id, killed in waiting.items():  # (skipped: it came after the unschedule)
        run = by_task[task_id]
        later = bool(run.worker) and not (run.worker or "").startswith(killed)
        ran_later = later and run.status in (RunStatus.success, RunStatus.skipped)
        assert ran_later or (run.status is RunStatus.lost and run.error), (
            killed,
            run.status,
            run.worker,
            run.error,
        )
    by_status = dict(Counter(r.status.value for r in runs))
    print(f"10 whole-worker SIGKILLs: {len(runs)} runs, {by_status}, "
          f"{len(waiting)} received but not started by a killed worker")  # fmt: skip


def test_a_one_shot_received_by_a_killed_worker_runs_once_on_another(stack: Stack) -> None:
    # Given a worker whose only slot is busy, and a one-shot it received but cannot start
    _setup(stack)
    first = _holding_worker(stack, "first")
    stack.beat()
    _launch(stack, "faults.stubborn", "seconds=60")
    wait_until(lambda: any(r.status is RunStatus.processing for r in stack.runs()), 30, 0.1,
               "the slot to be busy")  # fmt: skip
    later = stack.create("faults.pid", "--timing", "later", "--start", "+2s",
                         "--param", "seconds=0.1")  # fmt: skip
    (run,) = wait_until(lambda: stack.runs(later), 30, 0.1, "the one-shot to fire")
    wait_until(lambda: run.task_id in RECEIVED.findall(first.text()), 30, 0.1,
               "the first worker to receive it")  # fmt: skip
    assert _run(stack, run.id).status is RunStatus.queued
    # the worker tells what it holds at its next housekeeping round, not at once
    held = wait_until(lambda: (w := _where(stack, run.id))["place"] == "worker" and w, 15, 0.1,
                      "the monitor to see the message held by the first worker")  # fmt: skip
    assert held["name"].startswith("first@")

    # When that worker is killed whole and another one starts
    first.kill9()
    killed_at = time.monotonic()
    stack.worker("second", concurrency=2)

    # Then the one-shot runs on it, once, within seconds
    done = wait_until(lambda: (row := _run(stack, run.id)).status not in OPEN and row, 15,
                      0.1, "the one-shot to run on the second worker")  # fmt: skip
    print(f"\nthe one-shot ended {time.monotonic() - killed_at:.1f} s after the kill")
    assert done.status is RunStatus.success, done.error
    assert (done.worker or "").startswith("second@")
    assert _executions(done) == 1


def test_a_frozen_worker_that_wakes_does_not_run_what_was_given_back(stack: Stack) -> None:
    # Given a worker holding a run it cannot start yet, and a second worker
    _setup(stack)
    frozen = _holding_worker(stack, "frozen")
    _launch(stack, "faults.stubborn", "seconds=8")
    wait_until(lambda: any(r.status is RunStatus.processing for r in stack.runs()), 30, 0.1,
               "the slot to be busy")  # fmt: skip
    held = _launch(stack, "faults.pid", "seconds=0.1")
    wait_until(lambda: _run(stack, held).task_id in RECEIVED.findall(frozen.text()), 30, 0.1,
               "the worker to receive it")  # fmt: skip
    other = stack.worker("other", concurrency=2)

    # When the holder freezes beyond the redelivery setting, then wakes
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        done = wait_until(
            lambda: (row := _run(stack, held)).status is RunStatus.success and row,
            REDELIVER_AFTER_S + 15,
            0.1,
            "the run to go on the other worker",
        )
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    assert (done.worker or "").startswith("other@")
    frozen.wait_log("this one dropped", timeout_s=30)  # its own copy, once its slot is free

    # Then the run started once, on the other worker
    run = _run(stack, held)
    assert run.status is RunStatus.success and _executions(run) == 1, run.log
    assert (run.worker or "").startswith("other@")
    assert other.alive()


def test_a_long_run_is_not_given_back_while_it_runs(stack: Stack) -> None:
    # Given a run longer than the redelivery setting, and two workers that could take it
    _setup(stack)
    stack.worker("w1", concurrency=2)
    stack.worker("w2", concurrency=2)
    run_id = _launch(stack, "faults.pid", f"seconds={REDELIVER_AFTER_S * 3}")

    # When it runs to its end
    done = wait_until(lambda: (row := _run(stack, run_id)).status not in OPEN and row, 60, 0.2,
                      "the long run to end")  # fmt: skip

    # Then it ran once, as its first attempt, and its message was never given back
    assert done.status is RunStatus.success and done.attempt == 1, done.error
    assert _executions(done) == 1
    received = [t for proc in stack.procs for t in RECEIVED.findall(proc.text())]
    assert received == [done.task_id]
    assert not [proc.name for proc in stack.procs if "given back" in proc.text()]
