"""Preview: the next fires of a timing that is not saved (``bgproc preview``, the web form)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bgproc.timing.calendars import Calendar, CalendarPlan, read_policy, refuse_silenced
from bgproc.timing.plan import Timing

MAX_FIRES = 1000  # a preview is for reading


def preview(
    fields: Mapping[str, object],
    count: int,
    now: datetime,
    default_tz: str,
    calendars: Sequence[Calendar] = (),
    on_excluded: object = None,
) -> tuple[CalendarPlan, list[datetime]]:
    """The plan that ``fields`` (as ``request create`` takes them) and ``calendars`` give,
    anchored at ``now``, and its next ``count`` fires; nothing is written."""
    timing = Timing.build(dict(fields), now=now, default_tz=default_tz).anchored(now)
    plan = CalendarPlan(timing, tuple(calendars), read_policy(on_excluded, timing))
    refuse_silenced(plan, now)
    return plan, plan.upcoming(now, count)
