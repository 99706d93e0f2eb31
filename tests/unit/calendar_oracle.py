"""A brute-force evaluator of calendars, written apart from bgproc.timing.calendars to judge it.

Exclusion is read from each instant's wall clock as text; a window's end is found by
walking minute by minute; a fire moved to the next business day is looked for day by day
from the fire, with no shortcut. The timing's own fires come from Timing, which has its
own oracle (timing_oracle).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bgproc.timing.plan import Timing
from bgproc.timing.walltime import resolve_wall

MINUTE = timedelta(minutes=1)


def local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


def date_excluded(instant: datetime, cal: dict) -> bool:
    text = local(instant, cal["tz"]).strftime("%Y-%m-%d")
    return text in cal.get("dates", ()) or text[5:] in cal.get("yearly", ())


def in_window(instant: datetime, cal: dict) -> bool:
    clock = local(instant, cal["tz"]).strftime("%H:%M")
    return any(w[:5] <= clock < w[6:].replace("24:00", "99:99") for w in cal.get("windows", ()))


def excluded(instant: datetime, cals: list[dict]) -> bool:
    return any(date_excluded(instant, c) or in_window(instant, c) for c in cals)


def moved(fire: datetime, timing: Timing, cals: list[dict], max_days: int) -> datetime | None:
    """Where a fire happens under next-business-day, found the long way."""
    zone = timing.timezone
    at = local(fire, zone).time().replace(tzinfo=None)
    instant = fire
    while instant <= fire + timedelta(days=max_days):
        day = local(instant, zone).date()
        if day.isoweekday() >= 6 or any(date_excluded(instant, c) for c in cals):
            wall = datetime.combine(day + timedelta(days=1), at)
            instant = resolve_wall(wall, ZoneInfo(zone))
            continue
        if any(in_window(instant, c) for c in cals):
            instant = instant.replace(second=0) + MINUTE
            while any(in_window(instant, c) for c in cals):
                instant += MINUTE
            continue
        if timing.finish is not None and instant > timing.finish:
            return None
        return instant
    return None


def brute_plan(
    timing: Timing, cals: list[dict], policy: str, since: datetime, until: date | datetime,
    max_days: int,
) -> list[datetime]:
    """Every fire that happens in [since, until) of ``timing`` with calendars ``cals``."""
    base = []
    cursor = since - timedelta(days=max_days + 3)
    while (fire := timing.next_fire(cursor)) is not None and fire < until:
        base.append(fire)
        cursor = fire
    if policy == "skip":
        kept = {f for f in base if not excluded(f, cals)}
    else:
        kept = {m for f in base if (m := moved(f, timing, cals, max_days)) is not None}
    return sorted(f for f in kept if since <= f < until)
