"""``ctx.progress`` with a real worker: the run's progress is seen while it goes, in
``monitor show`` (and ``--json``) and ``monitor watch``, and stays with it once it ended.

``sample.sleep`` reports ``(second, seconds, "sleeping")`` once a second.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack
from tests.waiting import wait_until

SECONDS = 5
TIMEOUT_S = 60.0


def _show(stack: Stack, run_id: int) -> dict[str, Any]:
    return stack.cli("monitor", "show", str(run_id), "--json").json()


def test_a_runs_progress_is_seen_live_then_kept(stack: Stack) -> None:
    stack.worker()
    run_id = int(stack.cli("run", "sample.sleep", "--param", f"seconds={SECONDS}").out)

    def two_seconds_in() -> dict[str, Any] | None:
        shown = _show(stack, run_id)
        assert shown["status"] in ("queued", "processing"), shown  # not ended before it was seen
        progress = shown["progress"]
        return shown if progress is not None and progress["done"] >= 2 else None

    live = wait_until(two_seconds_in, TIMEOUT_S, 0.1, "the run's progress at 2 s")
    progress = live["progress"]
    assert live["status"] == "processing"
    assert (progress["total"], progress["message"]) == (SECONDS, "sleeping")
    assert progress["first_done"] == 0
    assert progress["percent"] == round(100 * progress["done"] / SECONDS, 1)
    assert 0.8 <= progress["rate_per_s"] <= 1.2  # a second a second, measured from the first
    assert abs(progress["remaining_s"] - (SECONDS - progress["done"])) <= 1.0
    human = stack.cli("monitor", "show", str(run_id)).out
    assert f"/ {SECONDS} (" in human and "left: sleeping" in human
    watched = stack.cli("monitor", "watch", "--count", "1").out  # piped: one plain snapshot
    assert f"/ {SECONDS} (" in watched

    def ended() -> dict[str, Any] | None:
        shown = _show(stack, run_id)
        return shown if shown["status"] not in ("queued", "processing") else None

    final = wait_until(ended, TIMEOUT_S, 0.1, "the run to end")
    assert final["status"] == "success"
    assert (final["progress"]["done"], final["progress"]["percent"]) == (SECONDS, 100.0)
    listed = stack.cli("monitor", "list", "--json").json()
    assert [run["progress"] for run in listed] == [final["progress"]]
