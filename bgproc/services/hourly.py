"""``monitor stats --hourly``, ``GET /api/v1/stats/hourly`` and the Stats page's charts: the
runs of a window per hour by status, and one process's p50/max duration per hour.

The window is read from user text as ``monitor stats --since`` reads it, then bounded: an
hour is one bar, and a chart of more than :data:`MAX_HOURS` bars is no longer legible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bgproc.errors import InvalidInput
from bgproc.services.runfilters import since_filter
from bgproc.timing.walltime import HOUR, utc_hour

if TYPE_CHECKING:  # the store loads SQLAlchemy: not for ``monitor stats --help``
    from bgproc.store.hourly import HourCounts, HourDurations
    from bgproc.store.runs import RunStore

DEFAULT_WINDOW = timedelta(hours=24)  # a day: what an operator looks at first
MAX_HOURS = 31 * 24  # a month of bars, each still a couple of pixels wide


@dataclass(frozen=True)
class HourlyStats:
    """A window's runs per hour, and (for one process) its durations per hour."""

    since: datetime
    until: datetime  # the end of the current hour
    process: str | None  # the counts' filter
    hours: list[HourCounts]
    durations_of: str | None
    durations: list[HourDurations]

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "process": self.process,
            "hours": [hour.as_json() for hour in self.hours],
            "durations_of": self.durations_of,
            "durations": [hour.as_json() for hour in self.durations],
        }


def hourly_window(since: str | None, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """``[since, end of now's hour)``: ``since`` as ``--since`` reads it, 24 h by default."""
    start = since_filter(since, zone, now) if since else now - DEFAULT_WINDOW
    until = utc_hour(now) + HOUR
    if until - utc_hour(start) > timedelta(hours=MAX_HOURS):
        raise InvalidInput(
            "since", f"{since!r} is too far back: hourly figures cover at most 31 days (use 31d)"
        )
    return start, until


def hourly_stats(
    runs: RunStore,
    since: datetime,
    until: datetime,
    process: str | None = None,
    durations_of: str | None = None,
) -> HourlyStats:
    """The counts of ``process`` (or of all) and the durations of ``durations_of``."""
    hours = runs.hourly_counts(since, until, process)
    durations = runs.hourly_durations(durations_of, since, until) if durations_of else []
    return HourlyStats(since, until, process, hours, durations_of, durations)
