"""Wall-clock time and the time line: the one home of the DST rules (design §2).

Plans speak wall-clock time in a zone; fires happen at instants. Across a DST
change each wall-clock occurrence fires exactly once: a repeated (autumn) time
on its first occurrence, a missing (spring gap) time right after the gap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)


def utc_now() -> datetime:
    """The present as every bgproc timestamp is kept: aware, in UTC (the one clock)."""
    return datetime.now(UTC)


def utc_hour(instant: datetime) -> datetime:
    """The start of the UTC hour ``instant`` is in: hours counted by the hour charts, the
    same length across DST (a zone's repeated or missing hour is still one UTC hour)."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def utc_hours(since: datetime, until: datetime) -> list[datetime]:
    """Every UTC hour that meets ``[since, until)``, in order."""
    hours, hour = [], utc_hour(since)
    while hour < until:
        hours.append(hour)
        hour += HOUR
    return hours


def resolve_wall(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which a wall-clock time fires in ``zone`` (design §2 DST rules).

    A repeated (autumn) wall time fires on its first occurrence; a wall time
    that does not exist (spring gap) fires at the end of the gap. The mapping
    never decreases as ``wall`` grows, which is what lets callers walk wall
    times in order and take the first instant past a bound.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap fold=1 applies the offset after the change, giving an earlier
    # instant; the change happened between the two. Find it to the second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    before = low.astimezone(zone).utcoffset()
    lo, hi = int(low.timestamp()), int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def to_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock reading of an instant in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)
