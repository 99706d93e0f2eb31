"""The Timing value: when a process request fires, and how that is said (design §2).

Pure: every function takes the instant it reasons from; nothing reads the
clock. Instants are aware UTC datetimes; wall-clock plans (daily, weekly,
monthly, yearly, cron) are evaluated in naive wall time of the request's zone and then
placed on the time line by :func:`resolve_wall`, the one home of the DST rules. The
fields a timing is made of, and how input and the stored document are read, are in
:mod:`bgproc.timing.fields`.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo

from bgproc.errors import InvalidInput
from bgproc.timing.cron import CronExpression
from bgproc.timing.fields import (
    TIMING_VERSION,
    DailyOption,
    Frequency,
    Ordinal,
    TimingKind,
    field_values,
    read_document,
    read_input,
)
from bgproc.timing.inputs import WEEKDAYS
from bgproc.timing.walltime import resolve_wall, to_wall


class Misfire(StrEnum):
    """What beat does with the fires it missed while it was down (Quartz's misfire
    instructions): one run for the latest, none, or each of them (up to a bound)."""

    RUN_ONCE = "run-once"
    SKIP = "skip"
    CATCH_UP = "catch-up"


DEFAULT_CATCH_UP_MAX = 10  # catch-up runs at most this many missed fires (the newest)
MAX_CATCH_UP = 1000  # as many as beat counts one by one (schedules.MISFIRE_SCAN_LIMIT)


INTERVAL_UNIT = {
    Frequency.SECONDS: timedelta(seconds=1),
    Frequency.MINUTES: timedelta(minutes=1),
    Frequency.HOURLY: timedelta(hours=1),
}
SEARCH_HORIZON_YEARS = 400  # one full Gregorian cycle: a plan silent that long never fires
# Month lengths and weekdays repeat every 4800 months, so the months that any step visits
# repeat within 4800 steps: a monthly or yearly plan silent for that many never fires.
SEARCH_HORIZON_STEPS = SEARCH_HORIZON_YEARS * 12
LAST_MONTH = 9999 * 12 + 11  # the calendar's last month, counted as year * 12 + month - 1
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Timing:
    """When a request fires: its kind, its plan and its limits. Build it with :meth:`build`."""

    kind: TimingKind
    timezone: str
    start: datetime | None = None
    finish: datetime | None = None
    frequency: Frequency | None = None
    interval: int | None = None
    repetitions: int | None = None
    daily_option: DailyOption | None = None
    at: time | None = None
    days: tuple[str, ...] = ()
    month: int | None = None  # 1..12
    day: str | None = None  # "1".."31" or "last"
    ordinal: Ordinal | None = None
    weekday: str | None = None
    cron: str | None = None

    # -- construction -------------------------------------------------------

    @classmethod
    def build(cls, fields: dict[str, object], now: datetime, default_tz: str) -> Timing:
        """A validated timing from loosely typed fields (strings from the CLI are fine).

        Raises :class:`InvalidInput` naming the first bad field. ``now`` anchors
        ``scheduled`` requests with no start and refuses a ``later`` in the past.
        """
        timing = cls(**read_input(fields, now, default_tz))
        timing._refuse_silent(now)
        return timing

    def _refuse_silent(self, now: datetime) -> None:
        """A plan with no fire left is refused, naming the field that silences it."""
        if self.kind is not TimingKind.SCHEDULED:
            return
        anchored = self.anchored(now)
        if anchored.upcoming(now, 1):
            return
        if self.finish is not None and replace(anchored, finish=None).upcoming(now, 1):
            raise InvalidInput("finish", "leaves no fire time: every fire would come after it")
        why = "leaves no fire time from now on"
        if self.frequency is Frequency.CRON:
            raise InvalidInput("cron", why)
        if self.frequency not in (Frequency.MONTHLY, Frequency.YEARLY):
            raise InvalidInput("repetitions", why)
        if (self.month, self.day) == (2, "29"):
            why += " (29 February is only in leap years)"
        raise InvalidInput("day" if self.day else "interval", why)

    def anchored(self, now: datetime) -> Timing:
        """This timing with its start fixed: ``immediate`` and a start-less plan begin ``now``."""
        if self.kind is TimingKind.IMMEDIATE or self.start is None:
            return replace(self, start=now.replace(microsecond=0))
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def cron_expression(self) -> CronExpression | None:
        return CronExpression.parse(self.cron) if self.cron else None

    # -- fire times ---------------------------------------------------------

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after ``after`` (aware), or None when the plan is over.

        The timing must be anchored (have a start).
        """
        if self.start is None:
            raise ValueError("timing is not anchored; call anchored(now) first")
        bound = max(after, self.start - ONE_MICROSECOND)
        try:
            if self.kind is not TimingKind.SCHEDULED:
                fire: datetime | None = self.start if self.start > bound else None
            elif self.frequency in INTERVAL_UNIT:
                fire = self._next_elapsed(bound)
            else:
                fire = self._next_wall(bound)
        except OverflowError:  # the calendar ends with the year 9999, and so does every plan
            return None
        if fire is None or (self.finish is not None and fire > self.finish):
            return None
        return fire

    def upcoming(self, now: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fire times at or after ``now``."""
        fires: list[datetime] = []
        after = now.replace(microsecond=0) - ONE_MICROSECOND  # fires are whole seconds
        while len(fires) < count:
            fire = self.next_fire(after)
            if fire is None:
                break
            fires.append(fire)
            after = fire
        return fires

    def _next_elapsed(self, bound: datetime) -> datetime | None:
        assert self.start is not None and self.frequency is not None
        step = INTERVAL_UNIT[self.frequency] * (self.interval or 1)
        index = 0 if bound < self.start else (bound - self.start) // step + 1
        if self.repetitions is not None and index >= self.repetitions:
            return None
        return self.start + step * index

    def _next_wall(self, bound: datetime) -> datetime | None:
        zone = self.zone
        # No earlier wall can fire after ``bound``: resolve_wall never decreases, and the
        # bound's own wall reading resolves to its first occurrence, at or before the bound.
        from_wall = to_wall(bound, zone).replace(microsecond=0)
        for wall in self._walls_from(from_wall):
            instant = resolve_wall(wall, zone)
            if instant > bound:
                return instant
        return None

    def _walls_from(self, wall: datetime) -> Iterator[datetime]:
        """Candidate wall times at or after ``wall``, in order; the plan's own calendar."""
        if self.frequency is Frequency.CRON:
            expression = self.cron_expression
            assert expression is not None
            candidate = expression.next_after(wall - timedelta(seconds=1))
            while candidate is not None:
                yield candidate
                candidate = expression.next_after(candidate)
            return
        assert self.at is not None and self.start is not None
        for day in self._days_from(wall.date()):
            candidate = datetime.combine(day, self.at)
            if candidate >= wall:
                yield candidate

    def _days_from(self, first: date) -> Iterator[date]:
        assert self.start is not None
        start_day = to_wall(self.start, self.zone).date()
        day = max(first, start_day)
        if self.frequency in (Frequency.MONTHLY, Frequency.YEARLY):
            yield from self._month_days(start_day, day)
            return
        last = date(min(day.year + SEARCH_HORIZON_YEARS, 9999), 12, 31)
        every = self.interval or 1
        if self.frequency is Frequency.DAILY and self.daily_option is DailyOption.EVERY:
            day += timedelta(days=-(day - start_day).days % every)
            while day <= last:
                yield day
                day += timedelta(days=every)
            return
        wanted = self._weekdays()
        week_zero = start_day - timedelta(days=start_day.weekday())
        while day <= last:
            in_week = ((day - week_zero).days // 7) % every == 0
            if in_week and day.weekday() in wanted:
                yield day
            day += timedelta(days=1)

    def _weekdays(self) -> frozenset[int]:
        if self.frequency is Frequency.WEEKLY:
            return frozenset(WEEKDAYS.index(d) for d in self.days)
        if self.daily_option is DailyOption.WEEKENDS:
            return frozenset({5, 6})
        return frozenset(range(5))

    def _month_days(self, start_day: date, first: date) -> Iterator[date]:
        """The plan's days from ``first`` on: in every N-th month counted from the start's
        month (monthly), or in its month of every N-th year counted from the start's (yearly)."""
        every = self.interval or 1
        if self.frequency is Frequency.YEARLY:
            assert self.month is not None
            step, phase = 12 * every, start_day.year * 12 + self.month - 1
        else:
            step, phase = every, start_day.year * 12 + start_day.month - 1
        index = first.year * 12 + first.month - 1
        index += -(index - phase) % step
        end = min(index + step * SEARCH_HORIZON_STEPS, LAST_MONTH + 1)
        for month_index in range(index, end, step):
            year, month = divmod(month_index, 12)
            day = self._day_in_month(year, month + 1)
            if day is not None and day >= first:
                yield day

    def _day_in_month(self, year: int, month: int) -> date | None:
        length = calendar.monthrange(year, month)[1]
        if self.day == "last":
            return date(year, month, length)
        if self.day is not None:
            number = int(self.day)
            return date(year, month, number) if number <= length else None
        assert self.ordinal is not None and self.weekday is not None
        target = WEEKDAYS.index(self.weekday)
        if self.ordinal is Ordinal.LAST:
            last = date(year, month, length)
            return last - timedelta(days=(last.weekday() - target) % 7)
        first = date(year, month, 1)
        nth = list(Ordinal).index(self.ordinal)
        return first + timedelta(days=(target - first.weekday()) % 7 + 7 * nth)

    # -- words --------------------------------------------------------------

    def describe(self) -> str:
        """The timing in plain words, as the request window would say it."""
        return _describe(self)

    # -- storage form ---------------------------------------------------------

    def fields(self) -> dict[str, object]:
        """The fields that are set, keyed as the declarations name them and JSON-able (ISO
        text for instants and times): what :meth:`build` took, for an update to change."""
        return field_values(self)

    def as_dict(self) -> dict[str, object]:
        """The stored form: one JSON document tagged with its version; see :meth:`from_dict`."""
        return {"v": TIMING_VERSION, **self.fields()}

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> Timing:
        """A timing from :meth:`as_dict` output, refused naming the field it damaged."""
        return cls(**read_document(document))


# -- words --------------------------------------------------------------------

UNIT_WORDS = {Frequency.SECONDS: "second", Frequency.MINUTES: "minute", Frequency.HOURLY: "hour"}


def _every(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _nth_weekday(timing: Timing) -> str:
    return f"the {timing.ordinal} {calendar.day_name[WEEKDAYS.index(timing.weekday or 'mon')]}"


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _describe(timing: Timing) -> str:
    zone = timing.zone
    if timing.kind is TimingKind.IMMEDIATE:
        return "Once, as soon as it is scheduled"
    if timing.kind is TimingKind.LATER:
        start = _local(timing.start, zone) if timing.start else "its start"
        return f"Once, at {start} ({timing.timezone})"
    frequency = timing.frequency
    interval = timing.interval or 1
    at = timing.at.strftime("%H:%M:%S" if timing.at.second else "%H:%M") if timing.at else ""
    if frequency in UNIT_WORDS:
        words = _every(interval, UNIT_WORDS[frequency])  # type: ignore[index]
        if timing.repetitions:
            times = "once" if timing.repetitions == 1 else f"{timing.repetitions} times"
            words += f", {times} in all"
    elif frequency is Frequency.DAILY:
        if timing.daily_option is DailyOption.WEEKDAYS:
            words = f"every weekday (Monday to Friday) at {at}"
        elif timing.daily_option is DailyOption.WEEKENDS:
            words = f"every weekend day (Saturday and Sunday) at {at}"
        else:
            words = f"{_every(interval, 'day')} at {at}"
    elif frequency is Frequency.WEEKLY:
        names = [calendar.day_name[WEEKDAYS.index(d)] for d in timing.days]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        words = f"{_every(interval, 'week')} on {listed} at {at}"
    elif frequency is Frequency.MONTHLY:
        if timing.day == "last":
            which = "the last day"
        elif timing.day:
            which = f"day {timing.day}"
        else:
            which = _nth_weekday(timing)
        words = f"{_every(interval, 'month')} on {which} at {at}"
        if timing.day and timing.day not in ("last", "1") and int(timing.day) > 28:
            words += f" (months without day {timing.day} are skipped)"
    elif frequency is Frequency.YEARLY:
        month = calendar.month_name[timing.month or 1]
        if timing.day == "last":
            which = f"the last day of {month}"
        elif timing.day:
            which = f"{timing.day} {month}"
        else:
            which = f"{_nth_weekday(timing)} of {month}"
        words = f"{_every(interval, 'year')} on {which} at {at}"
        if (timing.month, timing.day) == (2, "29"):
            words += " (only in leap years)"
    else:
        expression = timing.cron_expression
        words = expression.describe() if expression else ""
        words = words[:1].lower() + words[1:]
    text = words[:1].upper() + words[1:]
    if timing.start is not None:
        text += f", from {_local(timing.start, zone)}"
    if timing.finish is not None:
        text += f" until {_local(timing.finish, zone)}"
    return f"{text} ({timing.timezone})"
