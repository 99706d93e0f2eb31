"""Calendars: named sets of excluded dates, yearly dates and daily windows (Quartz's
HolidayCalendar, AnnualCalendar and DailyCalendar), and the plan of a timing with them.

Pure, like the rest of :mod:`bgproc.timing`: every function takes the instant it reasons
from. A calendar speaks wall time in its own zone: an excluded date is the whole day
there, a window ``[start, end)`` that span of its wall clock on every day (both
occurrences of a repeated autumn hour; nothing of a spring gap). :class:`CalendarPlan` is
the one home of what an excluded fire becomes, shared by preview, ``request show --next``
and beat:

* ``skip``: the fire does not happen; the plan goes on with its next fire.
* ``next-business-day``: the fire happens instead at the same wall-clock time (in the
  request's zone) on the next business day: Monday to Friday, and excluded by no calendar.
  A fire on a Saturday or Sunday moves too (what an accounting close needs); one inside
  an excluded window moves to the window's end. Moved fires that meet another fire are one
  fire; a fire moved past the request's finish, or not placeable within
  :data:`MAX_MOVE_DAYS`, does not happen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from bgproc.errors import InvalidInput
from bgproc.timing.fields import INTERVAL_FREQUENCIES
from bgproc.timing.inputs import YEAR_RANGE, parse_choice, parse_zone
from bgproc.timing.plan import ONE_MICROSECOND, Timing
from bgproc.timing.walltime import resolve_wall, to_wall


class OnExcluded(StrEnum):
    """What an excluded fire becomes: nothing (Quartz's calendars), or a run moved off it."""

    SKIP = "skip"
    NEXT_BUSINESS_DAY = "next-business-day"


CALENDAR_VERSION = 1  # the "v" of a calendar's stored document
MAX_MOVE_DAYS = 31  # a fire finds its business day within a month, or does not happen
# Skipping jumps over whole exclusions, so this many jumps span years; a plan that finds no
# fire in them (a calendar excluding every fire) is over, not searched for ever.
MAX_JUMPS = 20_000
SEARCH_YEARS = 20  # excluded fires further than this ahead end the search too
MAX_DATES = 1000  # per calendar: a holiday list, not a data set
MAX_WINDOWS = 48
DAY_MINUTES = 24 * 60
WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
YEARLY = re.compile(r"^(\d{2})-(\d{2})$")
LEAP_YEAR = 2000


@dataclass(frozen=True, order=True)
class Window:
    """A daily span of wall time, in minutes of the day: ``[start, end)``, end up to 24:00."""

    start_minute: int
    end_minute: int

    @property
    def text(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"

    def holds(self, wall: datetime) -> bool:
        return self.start_minute <= wall.hour * 60 + wall.minute < self.end_minute


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- reading user text ------------------------------------------------------------------


def parse_date(value: object) -> date:
    """``2027-01-06``: an excluded date."""
    text = str(value).strip()
    try:
        day = date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput("date", f"{text!r} is not a date (use YYYY-MM-DD, e.g. 2027-01-06)")
    if not YEAR_RANGE[0] <= day.year <= YEAR_RANGE[1]:
        raise InvalidInput("date", f"year must be between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}")
    return day


def parse_yearly(value: object) -> tuple[int, int]:
    """``12-25``: a month and day excluded every year (02-29 only in leap years)."""
    text = str(value).strip()
    match = YEARLY.match(text)
    month, day = (int(match[1]), int(match[2])) if match else (0, 0)
    try:
        date(LEAP_YEAR, month, day)
    except ValueError:
        raise InvalidInput(
            "yearly", f"{text!r} is not a month and day (use MM-DD, e.g. 12-25)"
        ) from None
    return month, day


def parse_window(value: object) -> Window:
    """``13:00-15:00``: a daily span, end after start (cross midnight with two windows)."""
    text = str(value).strip()
    match = WINDOW.match(text)
    if match is None:
        why = f"{text!r} is not a window (use HH:MM-HH:MM, e.g. 13:00-15:00)"
        raise InvalidInput("window", why)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > DAY_MINUTES:
        raise InvalidInput("window", f"{text!r} is not a time of day (00:00 to 24:00)")
    if end <= start:
        raise InvalidInput(
            "window",
            f"{text!r} ends before it starts (to cross midnight give two windows, "
            f"e.g. {_hhmm(start)}-24:00 and 00:00-{_hhmm(end)})",
        )
    return Window(start, end)


def _many(values: Iterable[object] | None, limit: int, label: str) -> list[object]:
    listed = [v for v in values or () if str(v).strip()]
    if len(listed) > limit:
        raise InvalidInput(label, f"at most {limit} per calendar")
    return listed


# -- the calendar -----------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """A named set of exclusions, in its own zone."""

    name: str
    timezone: str
    dates: tuple[date, ...] = ()
    yearly: tuple[tuple[int, int], ...] = ()
    windows: tuple[Window, ...] = ()
    _lookup: frozenset[date] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        name: str,
        timezone: object,
        dates: Iterable[object] | None = (),
        yearly: Iterable[object] | None = (),
        windows: Iterable[object] | None = (),
    ) -> Calendar:
        """A calendar from user text; refused naming the first bad field."""
        zone = parse_zone(timezone)
        parsed_dates = {parse_date(v) for v in _many(dates, MAX_DATES, "date")}
        parsed_yearly = {parse_yearly(v) for v in _many(yearly, MAX_DATES, "yearly")}
        parsed_windows = {parse_window(v) for v in _many(windows, MAX_WINDOWS, "window")}
        if not (parsed_dates or parsed_yearly or parsed_windows):
            raise InvalidInput("date", "a calendar needs a --date, --yearly or --window")
        return cls(name, zone, tuple(sorted(parsed_dates)), tuple(sorted(parsed_yearly)),
                   tuple(sorted(parsed_windows)))  # fmt: skip

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", frozenset(self.dates))

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # -- exclusions ---------------------------------------------------------------------

    def excludes_day(self, day: date) -> bool:
        """Whether a date of this calendar's zone is excluded (a date or a yearly date)."""
        return day in self._lookup or (day.month, day.day) in self.yearly

    def excludes(self, instant: datetime) -> bool:
        return self.exclusion_end(instant) is not None

    def date_excludes(self, instant: datetime) -> bool:
        return self.excludes_day(to_wall(instant, self.zone).date())

    def window_end(self, instant: datetime) -> datetime | None:
        """The end of the excluded window that holds ``instant``, or None."""
        wall = to_wall(instant, self.zone)
        ends = [w.end_minute for w in self.windows if w.holds(wall)]
        if not ends:
            return None
        return _first_after(wall.date(), max(ends), self.zone, instant)

    def exclusion_end(self, instant: datetime) -> datetime | None:
        """The first instant after the exclusion that holds ``instant`` (Quartz's next
        included time, for this rule); None when ``instant`` is not excluded."""
        wall = to_wall(instant, self.zone)
        if self.excludes_day(wall.date()):
            return _first_after(wall.date(), DAY_MINUTES, self.zone, instant)
        return self.window_end(instant)

    def touches(self, since: datetime, until: datetime) -> bool:
        """Whether an excluded date meets ``[since, until)``."""
        first = to_wall(since, self.zone).date()
        last = to_wall(until - ONE_MICROSECOND, self.zone).date()
        span = range((last - first).days + 1)
        return any(self.excludes_day(first + timedelta(days=n)) for n in span)

    # -- words and storage --------------------------------------------------------------

    def describe(self) -> str:
        """The exclusions in plain words."""
        parts = [d.isoformat() for d in self.dates]
        parts += [f"every {date(LEAP_YEAR, m, d):%d %B}" for m, d in self.yearly]
        parts += [f"daily {w.text}" for w in self.windows]
        return f"{', '.join(parts)} ({self.timezone})"

    def fields(self) -> dict[str, Any]:
        """The exclusions as JSON holds them (the CLI's spelling)."""
        return {
            "tz": self.timezone,
            "dates": [d.isoformat() for d in self.dates],
            "yearly": [f"{m:02d}-{d:02d}" for m, d in self.yearly],
            "windows": [w.text for w in self.windows],
        }

    def as_dict(self) -> dict[str, Any]:
        """The stored form, carried by schedule entries: tagged with its version."""
        return {"v": CALENDAR_VERSION, "name": self.name, **self.fields()}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Calendar:
        if document.get("v") != CALENDAR_VERSION:
            raise ValueError(f"calendar version {document.get('v')!r} is not {CALENDAR_VERSION}")
        return cls.build(
            str(document["name"]), document["tz"], document.get("dates"),
            document.get("yearly"), document.get("windows"),
        )  # fmt: skip


def _first_after(day: date, minute: int, zone: ZoneInfo, instant: datetime) -> datetime:
    """The instant the wall clock of ``zone`` reads ``day`` at ``minute`` (24:00: the next
    midnight), after ``instant``: in a repeated hour, its second occurrence if need be."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    end = resolve_wall(wall, zone)
    if end <= instant:
        end = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return end


# -- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarPlan:
    """A timing with its calendars: the fires that happen, after exclusion (module doc)."""

    timing: Timing
    calendars: tuple[Calendar, ...] = ()
    on_excluded: OnExcluded = OnExcluded.SKIP

    @property
    def plain(self) -> bool:
        """No calendar and nothing moved: exactly the timing's own fires."""
        return not self.calendars and self.on_excluded is OnExcluded.SKIP

    def anchored(self, now: datetime) -> CalendarPlan:
        return replace(self, timing=self.timing.anchored(now))

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire that happens strictly after ``after``, or None when none is left
        (also when no fire is left for :data:`MAX_JUMPS` exclusions)."""
        if self.plain:
            return self.timing.next_fire(after)
        if self.on_excluded is OnExcluded.SKIP:
            return self._next_kept(after)
        return self._next_moved(after)

    def upcoming(self, now: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fires at or after ``now`` (as :meth:`Timing.upcoming`)."""
        fires: list[datetime] = []
        after = now.replace(microsecond=0) - ONE_MICROSECOND
        while len(fires) < count:
            fire = self.next_fire(after)
            if fire is None:
                break
            fires.append(fire)
            after = fire
        return fires

    def excluded_by(self, instant: datetime) -> list[str]:
        """The names of the calendars that exclude ``instant``."""
        return [c.name for c in self.calendars if c.excludes(instant)]

    def describe(self) -> str:
        """The timing's words, with what its calendars do."""
        text = self.timing.describe()
        names = ", ".join(c.name for c in self.calendars)
        if self.on_excluded is OnExcluded.NEXT_BUSINESS_DAY:
            days = f"a weekend day or a day excluded by {names}" if names else "a weekend day"
            return f"{text}; a fire on {days} moves to the next business day"
        return f"{text}; fires excluded by {names} are skipped" if names else text

    # -- skip ---------------------------------------------------------------------------

    def _exclusion_end(self, instant: datetime) -> datetime | None:
        """Where the exclusions holding ``instant`` end together: every calendar's holds it
        from before it, so each instant up to the latest end is excluded."""
        ends = [end for c in self.calendars if (end := c.exclusion_end(instant)) is not None]
        return max(ends, default=None)

    def _next_kept(self, after: datetime) -> datetime | None:
        fire = self.timing.next_fire(after)
        horizon = after + timedelta(days=366 * SEARCH_YEARS)
        for _ in range(MAX_JUMPS):
            if fire is None or fire > horizon:
                return None
            end = self._exclusion_end(fire)
            if end is None:
                return fire
            fire = self.timing.next_fire(end - ONE_MICROSECOND)
        return None

    # -- next business day -----------------------------------------------------------------

    def _off_day(self, instant: datetime) -> bool:
        """A weekend day in the request's zone, or an excluded date of any calendar."""
        if to_wall(instant, self.timing.zone).weekday() >= 5:
            return True
        return any(c.date_excludes(instant) for c in self.calendars)

    def _window_end(self, instant: datetime) -> datetime | None:
        ends = [end for c in self.calendars if (end := c.window_end(instant)) is not None]
        return max(ends, default=None)

    def moved(self, fire: datetime) -> datetime | None:
        """Where ``fire`` happens: itself, or the same wall time on the next business day
        (a window's end, for a fire inside a window); None when it finds no place."""
        zone = self.timing.zone
        at = to_wall(fire, zone).time()
        limit = fire + timedelta(days=MAX_MOVE_DAYS)
        instant = fire
        while instant <= limit:
            if self._off_day(instant):
                next_day = to_wall(instant, zone).date() + timedelta(days=1)
                instant = resolve_wall(datetime.combine(next_day, at), zone)
                continue
            end = self._window_end(instant)
            if end is None:
                finish = self.timing.finish
                return instant if finish is None or instant <= finish else None
            instant = end
        return None

    def _lookback(self, after: datetime) -> datetime:
        """The earliest instant a fire can be from that is moved past ``after``: the start
        of the day before the last business day before ``after``'s (one more for a moved
        fire that a window in another zone pushes into the next day)."""
        zone = self.timing.zone
        day = to_wall(after, zone).date() - timedelta(days=1)
        for _ in range(MAX_MOVE_DAYS):
            since = resolve_wall(datetime.combine(day, time()), zone)
            until = resolve_wall(datetime.combine(day + timedelta(days=1), time()), zone)
            weekend = day.weekday() >= 5
            if not weekend and not any(c.touches(since, until) for c in self.calendars):
                break
            day -= timedelta(days=1)
        return resolve_wall(datetime.combine(day - timedelta(days=1), time()), zone)

    def _next_moved(self, after: datetime) -> datetime | None:
        best: datetime | None = None
        fire = self.timing.next_fire(min(after, self._lookback(after)) - ONE_MICROSECOND)
        horizon = after + timedelta(days=366 * SEARCH_YEARS)
        while fire is not None and (best is None or fire < best) and fire <= horizon:
            placed = self.moved(fire)
            if placed is not None and placed > after and (best is None or placed < best):
                best = placed
            fire = self.timing.next_fire(fire)
        return best


def read_policy(value: object, timing: Timing) -> OnExcluded:
    """``--on-excluded`` for ``timing`` (default skip). Moving to another day keeps a wall
    time, which an every-N-seconds/minutes/hours plan has none of: refused for those."""
    policy = parse_choice(value or OnExcluded.SKIP.value, "on-excluded", OnExcluded)
    if policy is OnExcluded.NEXT_BUSINESS_DAY and timing.frequency in INTERVAL_FREQUENCIES:
        raise InvalidInput(
            "on-excluded",
            "next-business-day moves a fire to another day at its wall-clock time: it is "
            "for daily, weekly, monthly, yearly and cron plans and one-shots (use skip)",
        )
    return OnExcluded(policy)


def refuse_silenced(plan: CalendarPlan, now: datetime) -> None:
    """A plan that fires, but whose every fire its calendars exclude, is refused."""
    if plan.timing.upcoming(now, 1) and not plan.upcoming(now, 1):
        names = ", ".join(c.name for c in plan.calendars) or "the weekend"
        raise InvalidInput("calendar", f"{names}: every fire of this plan is excluded")


def plan_of(
    timing: Timing, calendars: Sequence[Calendar] = (), on_excluded: OnExcluded | str = "skip"
) -> CalendarPlan:
    """The plan of a request: its timing, its calendars and its policy."""
    return CalendarPlan(timing, tuple(calendars), OnExcluded(on_excluded))
