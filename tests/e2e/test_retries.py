"""Retries on error for real: workers, beat, Redis and SQL, each attempt timed.

An always-failing request with ``--retries 2`` runs three attempts, each its backoff after
the last one ended (±1 s), then stops; a retry held by a worker survives that worker's
death (and a beat's stop); unschedule and kill stop a waiting retry; with
prevent-concurrent, a retry that would fall after the next fire is not made.
"""

from __future__ import annotations

from datetime import timedelta

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Stack
from tests.waiting import wait_until

TOLERANCE = timedelta(seconds=1)
RUN_TIMEOUT_S = 60
REDELIVER_AFTER_S = 4  # BGPROC_REDELIVER_AFTER_S: a dead worker's messages come back soon


def _attempts(stack: Stack, request_id: int, count: int, timeout_s: float) -> list[ProcessRun]:
    """The request's first ``count`` runs once each has ended."""

    def ended() -> list[ProcessRun] | None:
        runs = stack.runs(request_id)
        done = [r for r in runs if r.status not in (RunStatus.queued, RunStatus.processing)]
        return runs[:count] if len(done) >= count else None

    return wait_until(ended, timeout_s, 0.1, f"{count} ended runs of request {request_id}")


def _waiting_retry(stack: Stack, request_id: int) -> tuple[ProcessRun, ProcessRun]:
    """The failed first attempt and its retry, queued and waiting."""

    def found() -> tuple[ProcessRun, ProcessRun] | None:
        runs = stack.runs(request_id)
        if len(runs) == 2 and runs[0].status is RunStatus.error and runs[0].retry_at:
            return runs[0], runs[1]
        return None

    return wait_until(found, RUN_TIMEOUT_S, 0.1, f"request {request_id}'s retry")


def _assert_on_time(failed: ProcessRun, retry: ProcessRun, delay_s: int) -> None:
    due = failed.ended_at + timedelta(seconds=delay_s)
    assert retry.scheduled_at is not None and abs(retry.scheduled_at - due) <= TOLERANCE
    assert retry.started_at is not None, retry.id
    assert abs(retry.started_at - due) <= TOLERANCE, (retry.id, retry.started_at, due)


def test_an_always_failing_process_is_tried_three_times_at_its_backoffs_then_stops(
    stack: Stack,
) -> None:
    # Given a worker and a beat, and an immediate request of a process that always fails
    stack.worker_and_beat()
    request_id = stack.create(
        "sample.fail", "--timing", "immediate", "--retries", "2", "--retry-backoff", "2s"
    )

    # When it has run
    first, second, third = _attempts(stack, request_id, 3, RUN_TIMEOUT_S)

    # Then attempts 1-3 ran, each after its backoff (2 s, then 4 s), all of one fire
    assert [r.status for r in (first, second, third)] == [RunStatus.error] * 3
    assert [(r.try_number, r.max_tries) for r in (first, second, third)] == [(1, 3), (2, 3), (3, 3)]
    assert [r.first_run_id for r in (first, second, third)] == [None, first.id, first.id]
    assert (first.retry_run_id, second.retry_run_id) == (second.id, third.id)
    _assert_on_time(first, second, 2)
    _assert_on_time(second, third, 4)
    assert all(r.error == "RuntimeError: failed on purpose" for r in (first, second, third))
    assert "attempt 2 is run" in (first.log or "")

    # And then it stops: the last attempt has no retry, and no other run was made
    assert third.retry_run_id is None and third.retry_at is None
    assert len(stack.runs(request_id)) == 3

    # And the monitor tells each attempt's place
    shown = stack.cli("monitor", "show", str(third.id), "--json").json()["retry"]
    assert shown == {"attempt": 3, "of": 3, "first_run_id": first.id, "retrying_at": None,
                     "retry_run_id": None}  # fmt: skip
    words = stack.cli("monitor", "show", str(first.id)).out
    assert "attempt 1 of 3, retrying at" in words and f"(run {second.id})" in words
    assert "attempt 3 of 3" in stack.cli("monitor", "show", str(third.id)).out


def test_a_waiting_retry_survives_its_workers_death_and_beats_stop(stack: Stack) -> None:
    # Given a worker holding the retry of a failed run, due in 12 s
    stack.env["BGPROC_REDELIVER_AFTER_S"] = str(REDELIVER_AFTER_S)
    first_worker, beat = stack.worker_and_beat()
    request_id = stack.create(
        "sample.fail", "--timing", "immediate", "--retries", "1", "--retry-backoff", "12s"
    )
    failed, _ = _waiting_retry(stack, request_id)

    # When beat stops and the worker dies whole, and another worker starts
    beat.stop()
    first_worker.kill9()
    stack.worker(name="w2")

    # Then the retry runs once, when due (±1 s), on the new worker
    _, retry = _attempts(stack, request_id, 2, RUN_TIMEOUT_S)
    assert retry.status is RunStatus.error and retry.worker and retry.worker.startswith("w2@")
    _assert_on_time(failed, retry, 12)
    assert (retry.try_number, retry.max_tries, retry.first_run_id) == (2, 2, failed.id)
    assert len(stack.runs(request_id)) == 2


def test_unschedule_and_kill_stop_a_waiting_retry(stack: Stack) -> None:
    # Given two failed runs, each with a retry waiting a minute
    stack.worker_and_beat()
    args = ("sample.fail", "--timing", "immediate", "--retries", "3", "--retry-backoff", "60s")
    unscheduled, killed = stack.create(*args), stack.create(*args)
    _, retry_a = _waiting_retry(stack, unscheduled)
    failed_b, retry_b = _waiting_retry(stack, killed)

    # When one request is unscheduled, and the other's failed run is killed
    stack.cli("request", "unschedule", str(unscheduled))
    said = stack.cli("monitor", "kill", str(failed_b.id)).out

    # Then both retries ended at once, and their failed runs no longer say "retrying"
    assert f"run {retry_b.id} killed (the retry of run {failed_b.id}" in said
    runs = {r.id: r for r in stack.runs()}
    assert runs[retry_a.id].status is RunStatus.skipped
    assert "unscheduled" in (runs[retry_a.id].error or "")
    assert runs[retry_b.id].status is RunStatus.killed
    assert runs[retry_a.first_run_id].retry_at is None and runs[failed_b.id].retry_at is None
    shown = stack.cli("monitor", "show", str(failed_b.id)).out
    assert f"its retry, run {retry_b.id}, was stopped" in shown
    # And a second kill finds nothing left to stop
    again = stack.cli("monitor", "kill", str(failed_b.id), check=False)
    assert again.code == 4 and "already ended" in again.err


def test_with_prevent_concurrent_a_retry_never_falls_after_the_next_fire(stack: Stack) -> None:
    # Given a request firing every 5 s, whose retry would be due after 30 s
    stack.worker_and_beat()
    request_id = stack.create(
        "sample.fail", "--timing", "scheduled", "--frequency", "seconds", "--interval", "5",
        "--prevent-concurrent", "--retries", "2", "--retry-backoff", "30s",
    )  # fmt: skip

    # When its first fire fails
    (first,) = _attempts(stack, request_id, 1, RUN_TIMEOUT_S)
    stack.cli("request", "unschedule", str(request_id))

    # Then it is not retried: the next fire comes first, and its log says so
    assert first.status is RunStatus.error and first.retry_run_id is None
    assert "not retried: its request fires again" in (first.log or "")
