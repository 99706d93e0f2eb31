"""``ctx.progress``: what a report keeps, the figures derived from it, and bad calls."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgproc.progress import MAX_MESSAGE_CHARS, Progress, first_report
from bgproc.registry import ProcessContext
from bgproc.services.documents import progress_document, progress_text

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def _after(seconds: float, done: float, total: float | None = 100) -> Progress:
    """A first report of 10 done at T0, then ``done`` after ``seconds``."""
    return first_report(10, total, "", T0).after(done, total, "", T0 + timedelta(seconds=seconds))


def test_the_rate_is_of_the_work_measured_and_the_time_left_follows() -> None:
    progress = _after(10, 30)
    assert progress.percent == 30.0
    assert progress.rate_per_s == 2.0  # 20 done in 10 s: the 10 before the first report are not
    assert progress.remaining_s == 35.0
    assert progress_text(progress) == "30 / 100 (30.0 %), 2/s, about 35.0 s left"


def test_a_single_report_has_no_rate_and_no_total_no_percent() -> None:
    alone = first_report(3, None, "reading", T0)
    assert (alone.percent, alone.rate_per_s, alone.remaining_s) == (None, None, None)
    assert progress_text(alone) == "3: reading"
    assert _after(5, 20, total=None).remaining_s is None


def test_too_little_done_to_measure_has_no_rate() -> None:
    tiny = first_report(0, 0.0, "", T0).after(5e-324, 0.0, "", T0 + timedelta(seconds=2))
    assert (tiny.rate_per_s, tiny.remaining_s, tiny.percent) == (None, None, None)


def test_done_past_the_total_shows_100_percent_and_nothing_left() -> None:
    over = _after(10, 120)
    assert over.percent == 100.0 and over.remaining_s == 0.0


@given(
    done=st.floats(0, 1e12), total=st.none() | st.floats(0, 1e12), seconds=st.floats(0, 1e6),
    message=st.text(max_size=50),
)  # fmt: skip
def test_a_report_reads_back_from_its_json_as_written(
    done: float, total: float | None, seconds: float, message: str
) -> None:
    progress = first_report(0, total, "", T0).after(
        done, total, message, T0 + timedelta(seconds=seconds)
    )
    back = Progress.from_json(progress.as_json())
    assert back == progress
    assert back.as_json() == progress.as_json()
    assert progress_document(progress)["text"] == progress_text(progress)


class _Reports:
    def __init__(self) -> None:
        self.seen: list[Progress] = []

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)


def test_the_context_keeps_the_first_report_and_passes_on_each() -> None:
    reports = _Reports()
    ctx = ProcessContext(logging.getLogger("test"), run_id=1, report=reports)
    ctx.progress(1, 4, "one")
    ctx.progress(3, 4, "x" * (MAX_MESSAGE_CHARS + 10))
    first, latest = reports.seen
    assert (latest.first_at, latest.first_done) == (first.at, 1)
    assert (latest.done, latest.total, len(latest.message)) == (3, 4, MAX_MESSAGE_CHARS)


def test_a_context_outside_a_worker_takes_reports_and_keeps_them_nowhere() -> None:
    ProcessContext(logging.getLogger("test")).progress(1, 2)


@pytest.mark.parametrize(
    ("done", "total", "message", "error"),
    [
        ("1", 2, "", "progress done must be a number, not str"),
        (True, 2, "", "progress done must be a number, not bool"),
        (1, "2", "", "progress total must be a number, not str"),
        (-1, 2, "", "progress done must be a finite number >= 0, not -1"),
        (math.nan, 2, "", "progress done must be a finite number >= 0, not nan"),
        (1, math.inf, "", "progress total must be a finite number >= 0, not inf"),
        (1, 2, 3, "progress message must be text, not int"),
    ],
)
def test_a_wrong_call_is_refused_naming_what_is_wrong(
    done: Any, total: Any, message: Any, error: str
) -> None:
    reports = _Reports()
    with pytest.raises((TypeError, ValueError), match=f"^{error}$"):
        ProcessContext(logging.getLogger("test"), report=reports).progress(done, total, message)
    assert reports.seen == []
