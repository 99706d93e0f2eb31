"""Deadlines for real: workers, beat, Redis and SQL.

A start deadline with no worker running ends the run ``expired`` (beat's sweep), and a
worker started later does not run it; a worker that takes a run after its deadline (no beat
to expire it first) ends it ``expired`` itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Stack
from tests.waiting import wait_until

RUN_TIMEOUT_S = 60
DEADLINE_S = 2


def _run(stack: Stack, run_id: int) -> ProcessRun:
    return next(r for r in stack.runs() if r.id == run_id)


def _ended(stack: Stack, run_id: int) -> ProcessRun:
    def ended() -> ProcessRun | None:
        run = _run(stack, run_id)
        return run if run.status not in (RunStatus.queued, RunStatus.processing) else None

    return wait_until(ended, RUN_TIMEOUT_S, 0.1, f"run {run_id} ended")


def _only_run(stack: Stack, request_id: int) -> ProcessRun:
    return wait_until(lambda: next(iter(stack.runs(request_id)), None), RUN_TIMEOUT_S, 0.1,
                      f"request {request_id}'s run")  # fmt: skip


def _all_acked(stack: Stack) -> None:
    """Every message was taken from its queue and acknowledged."""

    def acked() -> bool:
        document = stack.cli("monitor", "queues", "--json").json()
        return document["unacked"] == 0 and all(q["waiting"] == 0 for q in document["queues"])

    wait_until(acked, RUN_TIMEOUT_S, 0.2, "every message acknowledged")


def test_a_start_deadline_with_no_worker_ends_the_run_expired_and_a_late_worker_does_not_run_it(
    stack: Stack,
) -> None:
    # Given a beat and no worker, and an immediate request with a start deadline
    stack.beat()
    request_id = stack.create("sample.echo", "--timing", "immediate", "--param", "a=1",
                              "--start-deadline", f"{DEADLINE_S}s")  # fmt: skip

    # When it fires, then its run waits queued, with its deadline
    queued = _only_run(stack, request_id)
    assert queued.status is RunStatus.queued
    assert queued.start_by == queued.scheduled_at + timedelta(seconds=DEADLINE_S)

    # And once the deadline passes, beat ends it expired, not started
    run = _ended(stack, queued.id)
    assert run.status is RunStatus.expired
    assert run.started_at is None and run.worker is None and not run.log
    assert run.ended_at >= queued.start_by
    assert run.error is not None and run.error.startswith("expired: not started by its start")

    # When a worker starts late, takes its message (and a later run's)
    worker = stack.worker()
    after = int(stack.cli("run", "sample.echo", "--param", "b=2").out)
    assert _ended(stack, after).status is RunStatus.success

    # Then it does not run it: the run stays expired and its message is acked
    _all_acked(stack)
    assert _same(_run(stack, queued.id), run)
    worker.wait_log(f"run {queued.id} already ended (expired)")

    # And the monitor shows it expired, with its deadline, and apart in the stats
    shown = stack.cli("monitor", "show", str(queued.id), "--json").json()
    assert shown["status"] == "expired" and shown["start_by"] is not None
    stats = stack.cli("monitor", "stats", "--json").json()
    echo = next(s for s in stats if s["process"] == "sample.echo")
    assert echo["counts"]["expired"] == 1 and echo["success_rate"] == 1.0


def test_a_worker_that_takes_a_run_past_its_start_deadline_ends_it_expired(
    stack: Stack,
) -> None:
    # Given no worker and no beat, and a request run once now with a start deadline
    request_id = stack.create("sample.echo", "--timing", "immediate", "--no-schedule",
                              "--start-deadline", f"{DEADLINE_S}s")  # fmt: skip
    run_id = int(stack.cli("request", "run", str(request_id)).out)
    queued = _run(stack, run_id)
    assert queued.start_by == queued.scheduled_at + timedelta(seconds=DEADLINE_S)

    # When its deadline passes, then a worker starts
    start_by = queued.start_by
    wait_until(lambda: datetime.now(UTC) > start_by, RUN_TIMEOUT_S, 0.1, "the start deadline")
    stack.worker()

    # Then the run ends expired, never started, its message acked
    run = _ended(stack, run_id)
    assert run.status is RunStatus.expired and run.started_at is None and not run.log
    _all_acked(stack)


def _same(a: ProcessRun, b: ProcessRun) -> bool:
    """Whether nothing of the run changed between the two reads."""
    columns = ("status", "started_at", "ended_at", "worker", "error", "log", "attempt")
    return all(getattr(a, c) == getattr(b, c) for c in columns)


def _overdue(stack: Stack, run_id: int) -> ProcessRun:
    def marked() -> ProcessRun | None:
        run = _run(stack, run_id)
        return run if run.overdue_at is not None else None

    return wait_until(marked, RUN_TIMEOUT_S, 0.1, f"run {run_id} overdue")


def test_a_run_past_its_max_runtime_is_shown_overdue_while_it_goes(stack: Stack) -> None:
    # Given a worker and a beat, and a request of a long run with a maximum runtime
    stack.worker_and_beat()
    request_id = stack.create("sample.sleep", "--timing", "immediate", "--param", "seconds=6",
                              "--max-runtime", "2s")  # fmt: skip

    # When it has gone on past it
    run = _overdue(stack, _only_run(stack, request_id).id)

    # Then it is marked overdue once, about its maximum runtime after it started, and goes on
    assert run.status is RunStatus.processing
    assert timedelta(seconds=2) <= run.overdue_at - run.started_at <= timedelta(seconds=3)
    shown = stack.cli("monitor", "show", str(run.id), "--json").json()
    assert shown["status"] == "processing" and shown["overdue_at"] is not None
    assert "OVERDUE since" in stack.cli("monitor", "show", str(run.id)).out
    assert "overdue" in stack.cli("monitor", "list").out

    # And it ends as it would have, the mark kept
    ended = _ended(stack, run.id)
    assert ended.status is RunStatus.success and ended.overdue_at == run.overdue_at
    assert "was overdue from" in stack.cli("monitor", "show", str(run.id)).out


def test_with_kill_overdue_an_overdue_run_is_killed_saying_by_whom(stack: Stack) -> None:
    # Given a worker and a beat, and a killable long run with --kill-overdue
    stack.worker_and_beat()
    request_id = stack.create("sample.sleep", "--timing", "immediate", "--param", "seconds=30",
                              "--max-runtime", "2s", "--kill-overdue")  # fmt: skip

    # When it goes past its maximum runtime
    run = _ended(stack, _only_run(stack, request_id).id)

    # Then it is killed, its error saying it was its overdue kill
    assert run.status is RunStatus.killed and run.overdue_at is not None
    assert run.error is not None
    assert run.error.startswith("killed: overdue, still running 2 s after it started "
                                "(--max-runtime 2 s --kill-overdue)")  # fmt: skip
    assert run.ended_at - run.started_at < timedelta(seconds=10)
