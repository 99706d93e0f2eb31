"""``--replace-running`` with a real worker and beat: a fire that finds its request's run
still going kills it and starts (Kubernetes' concurrencyPolicy Replace), never skipped."""

from __future__ import annotations

import itertools

from bgproc.statuses import RunStatus
from tests.e2e.conftest import Stack
from tests.waiting import wait_until

EVERY_4S = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "4")


def test_each_fire_replaces_the_run_still_going(stack: Stack) -> None:
    stack.worker_and_beat()
    request = stack.create("sample.sleep", "--param", "seconds=60", *EVERY_4S,
                           "--prevent-concurrent", "--replace-running")  # fmt: skip

    def replaced_twice() -> bool:
        runs = stack.runs(request)
        assert not [r for r in runs if r.status is RunStatus.skipped], [r.error for r in runs]
        return len([r for r in runs if r.status is RunStatus.killed]) >= 2

    wait_until(replaced_twice, 40, 0.2, "two runs replaced by the next fires")
    stack.cli("request", "unschedule", str(request))
    runs = stack.runs(request)  # by id: in the order of their fires
    for old, new in itertools.pairwise(runs):
        if old.status is RunStatus.killed and new.started_at is not None:
            assert old.ended_at is not None and old.ended_at <= new.started_at  # never two at once
    assert all("killed" in (r.error or "") for r in runs if r.status is RunStatus.killed)
    shown = stack.cli("request", "show", str(request), "--json").json()
    assert shown["prevent_concurrent"] and shown["replace_running"]
