"""The timing engine: when a process request fires (SPEC §2).

Pure: every function takes the instant it reasons from; nothing reads the
clock. Instants are aware UTC datetimes; wall-clock plans (daily, weekly,
monthly, cron) are evaluated in naive wall time of the request's zone and then
placed on the time line by :func:`resolve_wall`, the one home of the DST rules.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo

from bgproc.cron import CronExpression
from bgproc.errors import InvalidInput
from bgproc.inputs import (
    WEEKDAYS,
    field_label,
    parse_choice,
    parse_instant,
    parse_int,
    parse_time_of_day,
    parse_weekday,
    parse_zone,
    typed_instant,
)
from bgproc.walltime import resolve_wall, to_wall


class TimingKind(StrEnum):
    IMMEDIATE = "immediate"
    LATER = "later"
    SCHEDULED = "scheduled"


class Frequency(StrEnum):
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CRON = "cron"


class DailyOption(StrEnum):
    EVERY = "every"
    WEEKDAYS = "weekdays"
    WEEKENDS = "weekends"


class Ordinal(StrEnum):
    FIRST = "first"
    SECOND = "second"
    THIRD = "third"
    FOURTH = "fourth"
    LAST = "last"


class Misfire(StrEnum):
    RUN_ONCE = "run-once"
    SKIP = "skip"


INTERVAL_UNIT = {
    Frequency.SECONDS: timedelta(seconds=1),
    Frequency.MINUTES: timedelta(minutes=1),
    Frequency.HOURLY: timedelta(hours=1),
}
SEARCH_HORIZON_YEARS = 400  # one full Gregorian cycle: a plan silent that long never fires
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
        return _TimingParser(fields, now, default_tz).parse()

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
        last = date(min(day.year + SEARCH_HORIZON_YEARS, 9999), 12, 31)
        if self.frequency is Frequency.MONTHLY:
            yield from self._month_days(start_day, day, last)
            return
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

    def _month_days(self, start_day: date, first: date, last: date) -> Iterator[date]:
        every = self.interval or 1
        month_index = first.year * 12 + first.month - 1
        start_index = start_day.year * 12 + start_day.month - 1
        month_index += -(month_index - start_index) % every
        while month_index <= last.year * 12 + last.month - 1:
            year, month = divmod(month_index, 12)
            day = self._day_in_month(year, month + 1)
            if day is not None and day >= first:
                yield day
            month_index += every

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

    def as_dict(self) -> dict[str, object]:
        """JSON-able fields (ISO strings for instants); the inverse of :meth:`from_dict`."""
        return {
            "kind": self.kind.value,
            "timezone": self.timezone,
            "start": self.start.isoformat() if self.start else None,
            "finish": self.finish.isoformat() if self.finish else None,
            "frequency": self.frequency.value if self.frequency else None,
            "interval": self.interval,
            "repetitions": self.repetitions,
            "daily_option": self.daily_option.value if self.daily_option else None,
            "at": self.at.isoformat() if self.at else None,
            "days": list(self.days),
            "day": self.day,
            "ordinal": self.ordinal.value if self.ordinal else None,
            "weekday": self.weekday,
            "cron": self.cron,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Timing:
        """A timing from :meth:`as_dict` output (trusted: it was validated when built)."""

        def optional(kind: type, key: str) -> object:
            value = data.get(key)
            return None if value is None else kind(value)

        def instant(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(str(value)).astimezone(UTC) if value else None

        return cls(
            kind=TimingKind(str(data["kind"])),
            timezone=str(data["timezone"]),
            start=instant("start"),
            finish=instant("finish"),
            frequency=optional(Frequency, "frequency"),  # type: ignore[arg-type]
            interval=optional(int, "interval"),  # type: ignore[arg-type]
            repetitions=optional(int, "repetitions"),  # type: ignore[arg-type]
            daily_option=optional(DailyOption, "daily_option"),  # type: ignore[arg-type]
            at=optional(time.fromisoformat, "at"),  # type: ignore[arg-type]
            days=tuple(str(d) for d in data.get("days") or ()),  # type: ignore[attr-defined]
            day=optional(str, "day"),  # type: ignore[arg-type]
            ordinal=optional(Ordinal, "ordinal"),  # type: ignore[arg-type]
            weekday=optional(str, "weekday"),  # type: ignore[arg-type]
            cron=optional(str, "cron"),  # type: ignore[arg-type]
        )


# -- input --------------------------------------------------------------------

MAX_INTERVAL = 100_000
MAX_REPETITIONS = 1_000_000_000
FIELDS_OF = {
    Frequency.SECONDS: {"interval", "repetitions"},
    Frequency.MINUTES: {"interval", "repetitions"},
    Frequency.HOURLY: {"interval", "repetitions"},
    Frequency.DAILY: {"daily_option", "interval", "at"},
    Frequency.WEEKLY: {"days", "interval", "at"},
    Frequency.MONTHLY: {"day", "ordinal", "weekday", "interval", "at"},
    Frequency.CRON: {"cron"},
}
PLAN_FIELDS = frozenset().union(*FIELDS_OF.values())


class _TimingParser:
    """Turns loose fields into a :class:`Timing`, refusing the first bad one."""

    def __init__(self, fields: dict[str, object], now: datetime, default_tz: str) -> None:
        self.raw = {k: v for k, v in fields.items() if v is not None}
        self.now = now
        self.default_tz = default_tz

    def parse(self) -> Timing:
        raw = self.raw
        unknown = set(raw) - PLAN_FIELDS - {"timing", "tz", "start", "finish", "frequency"}
        if unknown:
            raise InvalidInput(field_label(sorted(unknown)[0]), "is not a timing field")
        kind = parse_choice(raw.get("timing", "immediate"), "timing", TimingKind)
        timezone = parse_zone(raw.get("tz", self.default_tz))
        zone = ZoneInfo(timezone)
        start = parse_instant(raw["start"], zone, self.now, "start") if "start" in raw else None
        finish = parse_instant(raw["finish"], zone, self.now, "finish") if "finish" in raw else None
        if kind is not TimingKind.SCHEDULED:
            self._refuse_extra(set(), f"is only for --timing scheduled (not {kind.value})")
            for key in ("frequency", "finish"):
                if key in raw:
                    raise InvalidInput(key, f"is only for --timing scheduled (not {kind.value})")
        if kind is TimingKind.IMMEDIATE and start is not None:
            raise InvalidInput("start", "is not used by --timing immediate (use later)")
        if kind is TimingKind.LATER:
            if start is None:
                raise InvalidInput("start", "is required for --timing later")
            if start < self.now.replace(microsecond=0):
                raise InvalidInput("start", "is in the past; a later request needs a future start")
        timing = Timing(kind=kind, timezone=timezone, start=start, finish=finish)  # type: ignore[arg-type]
        if kind is TimingKind.SCHEDULED:
            timing = self._plan(timing)
        begin = start or self.now.replace(microsecond=0)
        if finish is not None and finish < begin:
            shown = typed_instant(begin, zone)  # without --start, the start is now: say so
            raise InvalidInput(
                "finish",
                f"{typed_instant(finish, zone)} is before the start "
                f"({shown if start else 'now, ' + shown})",
            )
        self._refuse_silent(timing)
        return timing

    def _refuse_extra(self, allowed: set[str], why: str) -> None:
        for key in sorted(PLAN_FIELDS - allowed):
            if key in self.raw:
                raise InvalidInput(field_label(key), why)

    def _plan(self, timing: Timing) -> Timing:
        raw = self.raw
        if "frequency" not in raw:
            raise InvalidInput("frequency", "is required for --timing scheduled")
        frequency = parse_choice(raw["frequency"], "frequency", Frequency)
        assert isinstance(frequency, Frequency)
        self._refuse_extra(FIELDS_OF[frequency], f"is not used by --frequency {frequency.value}")
        plan: dict[str, object] = {"frequency": frequency}
        if "interval" in raw:
            plan["interval"] = parse_int(raw["interval"], "interval", 1, MAX_INTERVAL)
        if "repetitions" in raw:
            plan["repetitions"] = parse_int(raw["repetitions"], "repetitions", 1, MAX_REPETITIONS)
        if frequency in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY):
            if "at" not in raw:
                raise InvalidInput("at", f"is required for --frequency {frequency.value} (HH:MM)")
            plan["at"] = parse_time_of_day(raw["at"], "at")
        if frequency is Frequency.DAILY:
            option = parse_choice(raw.get("daily_option", "every"), "daily-option", DailyOption)
            if option is not DailyOption.EVERY and "interval" in raw:
                raise InvalidInput("interval", f"is not used with --daily-option {option.value}")
            plan["daily_option"] = option
        elif frequency is Frequency.WEEKLY:
            plan["days"] = self._days()
        elif frequency is Frequency.MONTHLY:
            plan.update(self._month_day())
        elif frequency is Frequency.CRON:
            if "cron" not in raw:
                raise InvalidInput("cron", "is required for --frequency cron")
            plan["cron"] = CronExpression.parse(str(raw["cron"])).text
        return replace(timing, **plan)  # type: ignore[arg-type]

    def _days(self) -> tuple[str, ...]:
        value = self.raw.get("days")
        if value is None:
            raise InvalidInput("days", "is required for --frequency weekly (e.g. mon,wed,fri)")
        if isinstance(value, str):
            value = value.split(",")
        names = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        picked = {parse_weekday(n, "days") for n in names if str(n).strip()}
        if not picked:
            raise InvalidInput("days", "needs at least one weekday")
        return tuple(d for d in WEEKDAYS if d in picked)

    def _month_day(self) -> dict[str, object]:
        raw = self.raw
        if "day" in raw:
            if "ordinal" in raw or "weekday" in raw:
                field = "ordinal" if "ordinal" in raw else "weekday"
                raise InvalidInput(field, "cannot be combined with --day")
            text = str(raw["day"]).strip().lower()
            day = "last" if text == "last" else str(parse_int(text, "day", 1, 31))
            return {"day": day}
        if "ordinal" not in raw or "weekday" not in raw:
            missing = "weekday" if "ordinal" in raw else "ordinal" if "weekday" in raw else "day"
            raise InvalidInput(missing, "monthly needs --day N|last, or --ordinal with --weekday")
        return {
            "ordinal": parse_choice(raw["ordinal"], "ordinal", Ordinal),
            "weekday": parse_weekday(raw["weekday"], "weekday"),
        }

    def _refuse_silent(self, timing: Timing) -> None:
        """A plan with no fire left is refused, naming the field that silences it."""
        if timing.kind is not TimingKind.SCHEDULED:
            return
        anchored = timing.anchored(self.now)
        if anchored.upcoming(self.now, 1):
            return
        if timing.finish is not None and replace(anchored, finish=None).upcoming(self.now, 1):
            raise InvalidInput("finish", "leaves no fire time: every fire would come after it")
        field = {
            Frequency.CRON: "cron",
            Frequency.MONTHLY: "day" if timing.day else "interval",
        }.get(timing.frequency, "repetitions")  # type: ignore[arg-type]
        raise InvalidInput(field, "leaves no fire time from now on")


# -- words --------------------------------------------------------------------

UNIT_WORDS = {Frequency.SECONDS: "second", Frequency.MINUTES: "minute", Frequency.HOURLY: "hour"}


def _every(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


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
            weekday = calendar.day_name[WEEKDAYS.index(timing.weekday or "mon")]
            which = f"the {timing.ordinal} {weekday}"
        words = f"{_every(interval, 'month')} on {which} at {at}"
        if timing.day and timing.day not in ("last", "1") and int(timing.day) > 28:
            words += f" (months without day {timing.day} are skipped)"
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
