"""A brute-force evaluator of design §2, written apart from bgproc.timing.plan to judge it.

It walks the time line minute by minute in UTC, reads the wall clock of the
request's zone at each minute, and decides by the plain words of docs/design.md §2:
a wall time that matches fires at its first occurrence; wall times skipped by
a spring gap fire once, at the first instant after the gap.
Plans are checked at minute resolution (``at`` and cron seconds are 0).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.unit.cron_oracle import matches as cron_matches

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ORDINALS = ["first", "second", "third", "fourth"]
MINUTE = timedelta(minutes=1)


def day_matches(plan: dict, day: date, start_day: date) -> bool:
    """Whether a calendar day belongs to a daily, weekly, monthly or yearly plan."""
    if day < start_day:
        return False
    every = plan.get("interval") or 1
    frequency = plan["frequency"]
    if frequency == "daily":
        option = plan.get("daily_option") or "every"
        if option == "weekdays":
            return day.isoweekday() <= 5
        if option == "weekends":
            return day.isoweekday() >= 6
        return (day.toordinal() - start_day.toordinal()) % every == 0
    if frequency == "weekly":
        start_monday = start_day.toordinal() - start_day.isoweekday() + 1
        weeks = (day.toordinal() - start_monday) // 7
        return DAYS[day.isoweekday() - 1] in plan["days"] and weeks % every == 0
    if frequency == "monthly":
        months = (day.year - start_day.year) * 12 + day.month - start_day.month
        return months % every == 0 and day_of_month_matches(plan, day)
    if frequency == "yearly":
        in_year = (day.year - start_day.year) % every == 0
        return in_year and day.month == int(plan["month"]) and day_of_month_matches(plan, day)
    raise ValueError(frequency)


def day_of_month_matches(plan: dict, day: date) -> bool:
    """Whether a day is the plan's day of its month: a number, the last, or the n-th weekday."""
    length = calendar.monthrange(day.year, day.month)[1]
    if plan.get("day") == "last":
        return day.day == length
    if plan.get("day"):
        return day.day == int(plan["day"])
    if DAYS[day.isoweekday() - 1] != plan["weekday"]:
        return False
    if plan["ordinal"] == "last":
        return day.day + 7 > length
    return (day.day - 1) // 7 == ORDINALS.index(plan["ordinal"])


def wall_matcher(plan: dict, start_day: date) -> Callable[[datetime], bool]:
    """A predicate on naive wall times (minute resolution) for a wall-clock plan."""
    if plan["frequency"] == "cron":
        return lambda wall: cron_matches(plan["cron"], wall)
    hour, minute = (int(x) for x in plan["at"].split(":")[:2])

    def matcher(wall: datetime) -> bool:
        return (wall.hour, wall.minute) == (hour, minute) and day_matches(
            plan, wall.date(), start_day
        )

    return matcher


def brute_fires(
    plan: dict, zone_name: str, start: datetime, after: datetime, until: datetime
) -> list[datetime]:
    """Every fire in (after, until] of a wall-clock plan starting at ``start`` (aware, UTC)."""
    zone = ZoneInfo(zone_name)
    start_day = start.astimezone(zone).date()
    match = wall_matcher(plan, start_day)
    fires: list[datetime] = []
    instant = (after - timedelta(hours=4)).replace(second=0, microsecond=0)
    latest_wall = instant.astimezone(zone).replace(tzinfo=None)
    instant += MINUTE
    while instant <= until:
        wall = instant.astimezone(zone).replace(tzinfo=None)
        fired = False
        if wall > latest_wall:
            # walls jumped over by a gap fire here, once; so does this wall itself
            skipped = latest_wall + MINUTE
            while skipped <= wall and not fired:
                fired = match(skipped)
                skipped += MINUTE
            latest_wall = wall
        if fired and instant > after and instant >= start:
            fires.append(instant.astimezone(UTC))
        instant += MINUTE
    return fires
