"""What Celery is told of each run's outcome (:func:`bgproc.runtime.outcome.report`), and the task's
settings that keep a failed run's message from being run again."""

from __future__ import annotations

import sys

import pytest
from celery.exceptions import Ignore

from bgproc.runtime.outcome import Outcome, ProcessFailed, RunFailed, report
from bgproc.runtime.runner import run_process
from bgproc.statuses import RunStatus


@pytest.mark.parametrize("status", [RunStatus.success, RunStatus.processing])
def test_a_success_or_a_started_group_returns(status: RunStatus) -> None:
    report(Outcome(status))


def test_an_error_the_process_raised_fails_with_its_traceback() -> None:
    try:
        _process()
    except RuntimeError:
        frames = sys.exc_info()[2]
    with pytest.raises(ProcessFailed) as raised:
        report(Outcome(RunStatus.error, "RuntimeError: boom", frames))
    assert str(raised.value) == "RuntimeError: boom"
    assert "_process" in [entry.name for entry in raised.traceback]  # what Celery logs


@pytest.mark.parametrize("status", [RunStatus.error, RunStatus.killed, RunStatus.lost])
def test_a_run_that_raised_nothing_fails_with_why(status: RunStatus) -> None:
    with pytest.raises(RunFailed) as raised:
        report(Outcome(status, "why"))
    assert str(raised.value) == "why"


@pytest.mark.parametrize("status", [RunStatus.skipped, None])
def test_a_skipped_or_dropped_delivery_is_ignored(status: RunStatus | None) -> None:
    with pytest.raises(Ignore):
        report(Outcome(status, "skipped: a run of this process is still going"))


def test_a_failed_run_is_acknowledged_and_only_an_error_of_the_process_logs_a_traceback() -> None:
    assert run_process.acks_late and run_process.acks_on_failure
    assert run_process.reject_on_worker_lost  # only a dead child's message goes back
    assert run_process.throws == (RunFailed,)  # logged without traceback; ProcessFailed with


def _process() -> None:
    raise RuntimeError("boom")
