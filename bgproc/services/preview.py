"""Preview: the next fires of a timing that is not saved (``bgproc preview``, the web form)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bgproc.timing.plan import Timing

MAX_FIRES = 1000  # a preview is for reading


def preview(
    fields: Mapping[str, object], count: int, now: datetime, default_tz: str
) -> tuple[Timing, list[datetime]]:
    """The timing that ``fields`` (as ``request create`` takes them) give, anchored at
    ``now``, and its next ``count`` fires; nothing is written."""
    timing = Timing.build(dict(fields), now=now, default_tz=default_tz).anchored(now)
    return timing, timing.upcoming(now, count)
