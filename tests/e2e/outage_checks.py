"""What every outage test proves once the service is back (issue 13's "done when").

- the first fire due at least 2 s after the service answered again starts on time
  (at most 1 s late);
- every due time is accounted for, once: a run, or a ``misfired`` record covering it;
- no run is left open, no due time ran twice, and the logs show no traceback.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import Proc, Stack
from tests.waiting import wait_until

ONE_SECOND = timedelta(seconds=1)
EVERY_SECOND = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "1")
ON_TIME = timedelta(seconds=1)
OPEN = (RunStatus.queued, RunStatus.processing)
LOG_LINE = re.compile(r"^\[[^\]]*: \w+/([\w-]+)\]")  # [2026-12-04 01:00:09,213: INFO/Beat]


def now() -> datetime:
    return datetime.now(UTC)


def first_fire_after(stack: Stack, request_id: int, back: datetime) -> ProcessRun:
    """The run of the first whole-second due time at least 2 s after ``back``, once started."""
    due = datetime.fromtimestamp(math.ceil(back.timestamp() + 2), UTC)

    def started() -> ProcessRun | None:
        for run in stack.fired(request_id):
            if run.scheduled_at == due and run.started_at is not None:
                return run
        return None

    return wait_until(started, 30, 0.1, f"the fire due {due:%H:%M:%S} to start")


def assert_on_time(run: ProcessRun) -> None:
    late = run.started_at - run.scheduled_at
    assert timedelta(0) <= late <= ON_TIME, f"due {run.scheduled_at}, started {late} late"


def settled(stack: Stack, timeout_s: float = 60) -> list[ProcessRun]:
    """Every run, once none is queued or processing any more."""
    return wait_until(lambda: (runs := stack.runs()) and all(r.status not in OPEN for r in runs)
                      and runs, timeout_s, 0.2, "every run to end")  # fmt: skip


def accounted(runs: Sequence[ProcessRun], request_id: int) -> list[datetime]:
    """The due times of a request, each once: a run, or covered by a misfired record."""
    dues: list[datetime] = []
    for run in runs:
        if run.request_id != request_id:
            continue
        if run.status is RunStatus.misfired and "fire(s) from" in (run.error or ""):
            count = int((run.error or "").split(" fire(s) from")[0].rsplit(" ", 1)[-1])
            dues += [run.scheduled_at + k * ONE_SECOND for k in range(count)]
        elif run.scheduled_at is not None:  # lost too: recorded, with its reason
            dues.append(run.scheduled_at)
    return sorted(dues)


def assert_every_due_once(runs: Sequence[ProcessRun], request_id: int) -> None:
    """No due time twice, and none missing between the first and the last."""
    dues = accounted(runs, request_id)
    doubled = [due for due, count in Counter(dues).items() if count > 1]
    assert not doubled, f"due times accounted twice: {doubled}"
    gaps = [(a, b) for a, b in itertools.pairwise(dues) if b - a != ONE_SECOND]
    assert not gaps, f"fires lost between {gaps}"


def assert_no_traceback(procs: Sequence[Proc], processes: tuple[str, ...] = ()) -> None:
    """No traceback in the logs; with ``processes``, none logged by those Celery processes
    (``Beat``, ``MainProcess``: ``up`` writes its worker's pool children in the same log)."""
    for proc in procs:
        writer = ""
        for line in proc.text().splitlines():
            if (found := LOG_LINE.match(line)) is not None:
                writer = found[1]
            if line.startswith("Traceback") and (not processes or writer in processes):
                raise AssertionError(f"{proc.name} ({writer}) logged a traceback:\n{proc.text()}")
