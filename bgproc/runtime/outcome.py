"""How a run ended, as Celery's own tools (Flower, ``celery events``) are told it.

Apart from :mod:`bgproc.runtime.runner`, which decides the outcome, because this is the
other side of the task: the one mapping from a run's status to what Celery reports. The
task succeeds, fails (:class:`ProcessFailed`, :class:`RunFailed`) or is ignored, as the
monitor recorded it (:func:`report`). The message is acknowledged either way: a failure
is an outcome, never a reason to run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from celery.exceptions import Ignore

from bgproc.statuses import RunStatus


class ProcessFailed(Exception):
    """The process raised: Celery's task fails with the run's error (as the monitor has it,
    secrets masked) and the process's traceback, which Celery logs once."""


class RunFailed(Exception):
    """A run killed, refused or given up: Celery's task fails with why. Nothing raised in
    the process, so no traceback is worth logging (the task ``throws`` it)."""


@dataclass(frozen=True)
class Outcome:
    """How this delivery ended, as the monitor recorded it, for Celery to report."""

    status: RunStatus | None  # None: nothing run or recorded (a duplicate, a gone run)
    why: str | None = None
    trace: TracebackType | None = None  # the process's own, when it raised


DROPPED = Outcome(None, "dropped: nothing to run (the worker log says why)")


def report(outcome: Outcome) -> None:
    """End Celery's task as the run ended: success (or a group started) returns, an error,
    a kill or a loss fails, anything else (skipped, dropped) is ignored."""
    if outcome.status in (RunStatus.success, RunStatus.processing):
        return
    if outcome.status in (RunStatus.error, RunStatus.killed, RunStatus.lost):
        if outcome.trace is not None:
            raise ProcessFailed(outcome.why).with_traceback(outcome.trace)
        raise RunFailed(outcome.why)
    raise Ignore(outcome.why)
