"""Group runs on real workers and beat (design §1, §4): steps in order, failures, a lost
step, and prevent-concurrent across workers.

A group fire is one parent run (``process`` = ``group:NAME``) whose steps are runs of
their own, linked by ``group_run_id``.
"""

from __future__ import annotations

import itertools
from typing import Any

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Stack
from tests.waiting import wait_until

RUN_TIMEOUT_S = 60
LEASE_S = 3
ENDED = tuple(s for s in RunStatus if s not in (RunStatus.queued, RunStatus.processing))


def _group_runs(stack: Stack, name: str) -> list[ProcessRun]:
    return [r for r in stack.runs() if r.process == f"group:{name}"]


def _steps(stack: Stack, parent: ProcessRun) -> list[ProcessRun]:
    return [r for r in stack.runs() if r.group_run_id == parent.id]


def _one_group_run_ended(stack: Stack, name: str, timeout_s: float = RUN_TIMEOUT_S) -> ProcessRun:
    def ended() -> ProcessRun | None:
        found = [r for r in _group_runs(stack, name) if r.status in ENDED]
        return found[0] if found else None

    return wait_until(ended, timeout_s, 0.1, f"a run of group {name} to end")


def _fire_once(stack: Stack, name: str, *steps: str, flags: tuple[str, ...] = ()) -> int:
    stack.cli("group", "create", name, *itertools.chain(*(("--step", s) for s in steps)), *flags)
    return stack.create("--group", name, "--timing", "immediate")


def test_three_steps_run_in_order_as_one_group_run(any_stack: Stack) -> None:
    stack = any_stack
    stack.worker_and_beat()
    _fire_once(stack, "nightly", "sample.echo step=1", "sample.sleep seconds=0.5",
               "sample.echo step=3")  # fmt: skip
    parent = _one_group_run_ended(stack, "nightly")
    assert parent.status is RunStatus.success, parent.error
    steps = _steps(stack, parent)
    assert [s.process for s in steps] == ["sample.echo", "sample.sleep", "sample.echo"]
    assert all(s.status is RunStatus.success for s in steps)
    assert [s.result for s in (steps[0], steps[2])] == [{"step": "1"}, {"step": "3"}]
    for before, after in itertools.pairwise(steps):
        assert before.ended_at <= after.started_at, "a step started before the previous ended"
    assert parent.started_at <= steps[0].started_at and steps[-1].ended_at <= parent.ended_at
    log = parent.log or ""
    for number, step in enumerate(steps, 1):
        assert f"step {number}/3 {step.process}: run {step.id} starts" in log
        assert f"step {number}/3 {step.process}: run {step.id} success" in log

    shown: dict[str, Any] = stack.cli("monitor", "show", str(parent.id), "--json").json()
    assert [s["id"] for s in shown["steps"]] == [s.id for s in steps]
    listed = stack.cli("monitor", "list", "--group", "nightly", "--json").json()
    assert [r["id"] for r in listed] == [parent.id]
    table = stack.cli("monitor", "show", str(parent.id)).out
    assert "Steps" in table and "sample.sleep" in table


def test_a_failing_middle_step_with_and_without_stop_on_error(stack: Stack) -> None:
    stack.worker_and_beat()
    steps = ("sample.echo step=1", "sample.fail", "sample.echo step=3")
    _fire_once(stack, "halts", *steps, flags=("--stop-on-error",))
    _fire_once(stack, "goes-on", *steps)

    halted = _one_group_run_ended(stack, "halts")
    assert halted.status is RunStatus.error
    ran = _steps(stack, halted)
    assert [s.status for s in ran] == [RunStatus.success, RunStatus.error]
    assert "1 step(s) not started" in (halted.error or ""), halted.error
    log = halted.log or ""
    assert f"run {ran[1].id} error (RuntimeError: failed on purpose)" in log
    assert log.count(f"run {ran[1].id} ") == 2, log  # it starts, it fails: the failure told once
    assert log.endswith(" GROUP error: 1 of 3 steps failed; stop on error: 1 not started\n"), log

    went_on = _one_group_run_ended(stack, "goes-on")
    assert went_on.status is RunStatus.error
    steps_run = _steps(stack, went_on)
    assert [s.status for s in steps_run] == [
        RunStatus.success, RunStatus.error, RunStatus.success,
    ]  # fmt: skip
    log = went_on.log or ""
    assert log.count(f"run {steps_run[1].id} ") == 2, log
    assert log.endswith(" GROUP error: 1 of 3 steps failed\n"), log


def test_a_worker_killed_during_a_step_leaves_it_lost_and_the_group_in_error(
    stack: Stack,
) -> None:
    stack.env["BGPROC_RUN_LEASE_S"] = str(LEASE_S)
    doomed = stack.worker("w1", concurrency=1)
    stack.beat()
    _fire_once(stack, "fragile", "sample.sleep seconds=120", "sample.echo step=2")

    def step_going() -> ProcessRun | None:
        going = [r for r in stack.runs() if r.group_run_id and r.status is RunStatus.processing]
        return going[0] if going else None

    step = wait_until(step_going, RUN_TIMEOUT_S, 0.1, "the first step to run")
    stack.worker("w2", concurrency=1)
    doomed.kill9()
    parent = _one_group_run_ended(stack, "fragile", timeout_s=LEASE_S + 30)
    assert parent.status is RunStatus.error
    steps = _steps(stack, parent)
    assert steps[0].id == step.id and steps[0].status is RunStatus.lost
    assert [s.status for s in steps[1:]] == [RunStatus.success]  # no stop on error: it goes on
    assert "ended lost" in (parent.error or "")


def test_a_prevent_concurrent_group_fired_every_second_records_skipped_runs(
    any_stack: Stack,
) -> None:
    stack = any_stack
    stack.worker("w1", concurrency=2)
    stack.worker("w2", concurrency=2)
    stack.beat()
    stack.cli("group", "create", "slow", "--step", "sample.sleep seconds=2.5",
              "--prevent-concurrent")  # fmt: skip
    request_id = stack.create("--group", "slow", "--timing", "scheduled", "--frequency",
                              "seconds", "--interval", "1")  # fmt: skip

    def enough() -> bool:
        runs = _group_runs(stack, "slow")
        return (sum(r.status is RunStatus.success for r in runs) >= 2
                and sum(r.status is RunStatus.skipped for r in runs) >= 3)  # fmt: skip

    wait_until(enough, 40, 0.2, "two group runs done and three skipped")
    stack.cli("request", "unschedule", str(request_id))
    wait_until(lambda: all(r.status in ENDED for r in _group_runs(stack, "slow")), 30, 0.2,
               "every group run to end")  # fmt: skip
    runs = _group_runs(stack, "slow")
    going = sorted((r.started_at, r.ended_at) for r in runs if r.status is RunStatus.success)
    for (_, end), (start, _) in itertools.pairwise(going):
        assert end <= start, "two runs of the group overlapped"
    skipped = [r for r in runs if r.status is RunStatus.skipped]
    held_back = [r for r in skipped if "prevent concurrent" in (r.error or "")]
    assert len(held_back) >= 3
    # the others were queued when the request was unscheduled: refused, never started
    assert all("is unscheduled" in (r.error or "") for r in skipped if r not in held_back)
    assert all(not _steps(stack, r) for r in skipped), "a skipped group run started a step"


def test_a_killed_group_run_starts_no_further_step_and_stops_its_running_one(
    any_stack: Stack,
) -> None:
    stack = any_stack
    stack.worker_and_beat()
    _fire_once(stack, "killme", "sample.sleep seconds=60", "sample.echo step=2")

    def running_step() -> tuple[ProcessRun, ProcessRun] | None:
        for parent in _group_runs(stack, "killme"):
            steps = [s for s in _steps(stack, parent) if s.status is RunStatus.processing]
            if steps:
                return parent, steps[0]
        return None

    parent, step = wait_until(running_step, RUN_TIMEOUT_S, 0.1, "the first step to run")
    killed = stack.cli("monitor", "kill", str(parent.id))
    assert killed.out.strip() == f"group run {parent.id} killed"
    parent = _one_group_run_ended(stack, "killme")
    assert parent.status is RunStatus.killed and "no further step" in (parent.error or "")

    def step_ended() -> ProcessRun | None:
        found = [s for s in _steps(stack, parent) if s.id == step.id and s.status in ENDED]
        return found[0] if found else None

    assert wait_until(step_ended, RUN_TIMEOUT_S, 0.1, "the step to stop").status is RunStatus.killed
    assert [s.process for s in _steps(stack, parent)] == ["sample.sleep"], "a further step started"
