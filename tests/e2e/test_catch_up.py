"""``--misfire catch-up`` with a real worker and beat: after an outage of the beat, each
missed fire runs, oldest first, up to ``--catch-up-max``; older ones are recorded misfired.

Two every-2-s requests (bound 10 and bound 3) fire with a beat, the beat stops for about
eleven seconds (five fires of each missed), and a new beat takes over.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bgproc.statuses import RunStatus
from tests.e2e.conftest import Stack, iso
from tests.waiting import wait_until

EVERY_2S = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "2")
STEP = timedelta(seconds=2)
OUTAGE_S = 11.0  # five fires of an every-2-s plan fall due in it
MISFIRED = re.compile(r"(\d+) fire\(s\) from (\S+) not executed")


def test_catch_up_runs_each_missed_fire_up_to_its_bound(stack: Stack) -> None:
    stack.worker()
    beat = stack.beat()
    every = stack.create("sample.echo", *EVERY_2S, "--misfire", "catch-up")
    bounded = stack.create("sample.echo", *EVERY_2S, "--misfire", "catch-up",
                           "--catch-up-max", "3")  # fmt: skip
    for request in (every, bounded):
        wait_until(lambda r=request: len(stack.fired(r)) >= 2, 30, 0.2, "two fires with a beat")

    # When the beat is down for five fires of each
    beat.stop()
    stopped = datetime.now(UTC)
    last = {r: max(run.scheduled_at for run in stack.runs(r)) for r in (every, bounded)}
    wait_until(lambda: datetime.now(UTC) >= stopped + timedelta(seconds=OUTAGE_S), 30, 0.2,
               "the outage to last")  # the wait is the outage under test  # fmt: skip
    restarted = datetime.now(UTC)
    stack.beat("beat-2")

    # Then every due time since is accounted for once: run, or recorded misfired
    def going_on(request: int) -> bool:
        return any(r.scheduled_at > restarted + 2 * STEP for r in stack.fired(request))

    for request in (every, bounded):
        wait_until(lambda r=request: going_on(r), 40, 0.2, "the plan to go on after catch-up")
    for request in (every, bounded):
        ran = [r.scheduled_at for r in stack.fired(request)]
        assert len(ran) == len(set(ran)), ran  # none twice
        assert all(r.status is RunStatus.success for r in stack.fired(request))
        covered = _misfire_cover([r for r in stack.runs(request) if r.status is RunStatus.misfired])
        since = _dues(last[request] + STEP, max(ran))
        assert sorted([*(d for d in ran if d > last[request]), *covered]) == since
    outage = {r: _dues(last[r] + STEP, restarted) for r in (every, bounded)}
    assert all(len(dues) >= 5 for dues in outage.values()), outage
    # bound 10: each of the outage's fires ran, none recorded missed
    assert [r for r in stack.runs(every) if r.status is RunStatus.misfired] == []
    # bound 3: at most three of them ran (the newest), the older ones are recorded missed
    kept = [r.scheduled_at for r in stack.fired(bounded) if r.scheduled_at in outage[bounded]]
    assert len(kept) <= 3 and kept == outage[bounded][len(outage[bounded]) - len(kept):], kept


def _dues(first: datetime, until: datetime) -> list[datetime]:
    """The every-2-s due times from ``first`` while not after ``until``."""
    dues, due = [], first
    while due <= until:
        dues.append(due)
        due += STEP
    return dues


def _misfire_cover(records: list) -> set[datetime]:
    covered: set[datetime] = set()
    for record in records:
        match = MISFIRED.search(record.error or "")
        assert match, record.error
        count, first = int(match[1]), iso(match[2])
        covered |= {first + k * STEP for k in range(count)}
    return covered


