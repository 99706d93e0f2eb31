"""The timing engine: when a process request fires (design §2).

Pure: every function takes the instant it reasons from; nothing reads the
clock. Instants are aware UTC datetimes; wall-clock plans (daily, weekly,
monthly, cron) are evaluated in naive wall time of the request's zone and then
placed on the time line by :func:`resolve_wall`, the one home of the DST rules.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from bgproc.errors import InvalidInput
from bgproc.timing.cron import CronExpression
from bgproc.timing.inputs import (
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
from bgproc.timing.walltime import resolve_wall, to_wall


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
    YEARLY = "yearly"
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
# Month lengths and weekdays repeat every 4800 months, so the months that any step visits
# repeat within 4800 steps: a monthly or yearly plan silent for that many never fires.
SEARCH_HORIZON_STEPS = SEARCH_HORIZON_YEARS * 12
LAST_MONTH = 9999 * 12 + 11  # the calendar's last month, counted as year * 12 + month - 1
LEAP_YEAR = 2000  # any leap year: where each month is at its longest
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
        """The fields that are set, keyed as :data:`TIMING_FIELDS` name them and JSON-able
        (ISO text for instants and times): what :meth:`build` took, for an update to change."""
        fields: dict[str, object] = {}
        for field in TIMING_FIELDS:
            value = getattr(self, field.attr)
            if value is not None and value != ():
                fields[field.key] = _plain(value)
        return fields

    def as_dict(self) -> dict[str, object]:
        """The stored form: one JSON document tagged with its version; see :meth:`from_dict`."""
        return {"v": TIMING_VERSION, **self.fields()}

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> Timing:
        """A timing from :meth:`as_dict` output. Each value is read back by its field's own
        parser, so a document damaged in storage is refused naming the field."""
        if document.get("v") != TIMING_VERSION:
            raise ValueError(f"timing version {document.get('v')!r} is not {TIMING_VERSION}")
        for key in ("timing", "tz"):
            if document.get(key) is None:
                raise ValueError(f"timing document without {key!r}")
        context = _Context(ZoneInfo(parse_zone(document["tz"])), STORED_NOW)
        values = {
            field.attr: field.read(document[field.key], context)
            for field in TIMING_FIELDS
            if document.get(field.key) is not None
        }
        return cls(**values)


def _plain(value: object) -> object:
    """A field's value as JSON holds it."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime | time):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


# -- the fields ---------------------------------------------------------------

TIMING_VERSION = 1  # the "v" of the stored document; a reader refuses any other
STORED_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # stored instants are absolute, never "now"


class _Context(NamedTuple):
    """What reading a field may need beside its value: the request's zone, and the present."""

    zone: ZoneInfo
    now: datetime


Parse = Callable[[object, str, _Context], Any]


@dataclass(frozen=True)
class TimingField:
    """One timing field, declared once for every front end and the store.

    ``key`` names it in the service's fields and in the stored document, and (as
    ``--key-with-dashes``) on the command line; ``parse`` turns loose input (CLI text, a
    Python value, a stored value) into the field's value or refuses it naming the field.
    """

    key: str
    metavar: str
    help: str
    parse: Parse
    attribute: str | None = None  # the Timing attribute, where it is not the key

    @property
    def attr(self) -> str:
        return self.attribute or self.key

    @property
    def label(self) -> str:
        """The field as the user spells it: options and messages."""
        return field_label(self.key)

    def read(self, value: object, context: _Context) -> Any:
        return self.parse(value, self.label, context)


def _choice(choices: type[StrEnum]) -> Parse:
    return lambda value, label, _: parse_choice(value, label, choices)


def _whole(low: int, high: int) -> Parse:
    return lambda value, label, _: parse_int(value, label, low, high)


def _instant(value: object, label: str, context: _Context) -> datetime:
    return parse_instant(value, context.zone, context.now, label)


def _days(value: object, label: str, _: _Context) -> tuple[str, ...]:
    """Weekdays as ``mon,wed`` or a list, in week order."""
    if isinstance(value, str):
        value = value.split(",")
    names = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
    picked = {parse_weekday(n, label) for n in names if str(n).strip()}
    if not picked:
        raise InvalidInput(label, "needs at least one weekday")
    return tuple(d for d in WEEKDAYS if d in picked)


def _month(value: object, label: str, _: _Context) -> int:
    """1..12, or a month's name (``mar``, ``March``)."""
    text = str(value).strip().lower()
    for number in range(1, 13):
        name = calendar.month_name[number].lower()
        if text in (name, name[:3]):
            return number
    if not text.removeprefix("-").isdigit():
        raise InvalidInput(label, f"{value!r} is not a month (1..12 or jan..dec)")
    return parse_int(text, label, 1, 12)


def _day(value: object, label: str, _: _Context) -> str:
    text = str(value).strip().lower()
    return "last" if text == "last" else str(parse_int(text, label, 1, 31))


MAX_INTERVAL = 100_000
MAX_REPETITIONS = 1_000_000_000
TIMING_FIELDS = (
    TimingField(
        "timing",
        "KIND",
        f"{' | '.join(TimingKind)} (default: immediate).",
        _choice(TimingKind),
        attribute="kind",
    ),
    TimingField(
        "start",
        "DATETIME",
        "First fire: ISO date-time (2027-01-31T09:30[+01:00]), 'now' or "
        "'+10m'. A time without offset is in --tz.",
        _instant,
    ),
    TimingField(
        "tz",
        "ZONE",
        "IANA zone of wall-clock times (default: BGPROC_TIMEZONE or the machine's).",
        lambda value, _, __: parse_zone(value),
        attribute="timezone",
    ),
    TimingField("frequency", "FREQ", f"{' | '.join(Frequency)}.", _choice(Frequency)),
    TimingField(
        "interval",
        "N",
        "Every N seconds/minutes/hours/days/weeks/months/years (default 1).",
        _whole(1, MAX_INTERVAL),
    ),
    TimingField(
        "repetitions",
        "R",
        "Fire R times in all (seconds, minutes, hourly).",
        _whole(1, MAX_REPETITIONS),
    ),
    TimingField(
        "daily_option",
        "OPTION",
        f"{' | '.join(DailyOption)} (daily; default every).",
        _choice(DailyOption),
    ),
    TimingField(
        "at",
        "HH:MM[:SS]",
        "Wall-clock time of day (daily, weekly, monthly, yearly).",
        lambda value, label, _: parse_time_of_day(value, label),
    ),
    TimingField("days", "DAYS", "Weekdays for weekly, e.g. mon,wed,fri.", _days),
    TimingField("month", "M", "Month 1..12 or jan..dec (yearly).", _month),
    TimingField("day", "N|last", "Day of month 1..31 or 'last' (monthly, yearly).", _day),
    TimingField(
        "ordinal",
        "WHICH",
        f"{' | '.join(Ordinal)} (monthly, yearly; with --weekday).",
        _choice(Ordinal),
    ),
    TimingField(
        "weekday",
        "DAY",
        "mon..sun (monthly, yearly; with --ordinal).",
        lambda value, label, _: parse_weekday(value, label),
    ),
    TimingField(
        "cron",
        "EXPR",
        "Unix 'm h dom mon dow' or Quartz 's m h dom mon dow [year]'.",
        lambda value, _, __: CronExpression.parse(str(value)).text,
    ),
    TimingField("finish", "DATETIME", "Nothing fires after this date-time.", _instant),
)
FIELD = {field.key: field for field in TIMING_FIELDS}
TIMING_KEYS = tuple(FIELD)


# -- input --------------------------------------------------------------------

FIELDS_OF = {
    Frequency.SECONDS: {"interval", "repetitions"},
    Frequency.MINUTES: {"interval", "repetitions"},
    Frequency.HOURLY: {"interval", "repetitions"},
    Frequency.DAILY: {"daily_option", "interval", "at"},
    Frequency.WEEKLY: {"days", "interval", "at"},
    Frequency.MONTHLY: {"day", "ordinal", "weekday", "interval", "at"},
    Frequency.YEARLY: {"month", "day", "ordinal", "weekday", "interval", "at"},
    Frequency.CRON: {"cron"},
}
PLAN_FIELDS = frozenset().union(*FIELDS_OF.values())
PLAN_KEYS = frozenset({"frequency", *PLAN_FIELDS})  # what a new --timing or --frequency replaces


class _TimingParser:
    """Turns loose fields into a :class:`Timing`, refusing the first bad one."""

    def __init__(self, fields: dict[str, object], now: datetime, default_tz: str) -> None:
        self.raw = {k: v for k, v in fields.items() if v is not None}
        self.now = now
        self.default_tz = default_tz
        self.context = _Context(ZoneInfo("UTC"), now)  # until the request's zone is read

    def _value(self, key: str, default: object = None) -> Any:
        """The field's value read from the input (or from ``default``); None when absent."""
        value = self.raw.get(key, default)
        return None if value is None else FIELD[key].read(value, self.context)

    def parse(self) -> Timing:
        raw = self.raw
        unknown = set(raw) - set(FIELD)
        if unknown:
            raise InvalidInput(field_label(sorted(unknown)[0]), "is not a timing field")
        kind = self._value("timing", TimingKind.IMMEDIATE.value)
        timezone = self._value("tz", self.default_tz)
        self.context = _Context(ZoneInfo(timezone), self.now)
        start, finish = self._value("start"), self._value("finish")
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
        timing = Timing(kind=kind, timezone=timezone, start=start, finish=finish)
        if kind is TimingKind.SCHEDULED:
            timing = self._plan(timing)
        begin = start or self.now.replace(microsecond=0)
        if finish is not None and finish < begin:
            zone = self.context.zone
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

    def _required(self, key: str, why: str) -> Any:
        if key not in self.raw:
            raise InvalidInput(field_label(key), why)
        return self._value(key)

    def _plan(self, timing: Timing) -> Timing:
        frequency = self._required("frequency", "is required for --timing scheduled")
        own = FIELDS_OF[frequency]
        self._refuse_extra(own, f"is not used by --frequency {frequency.value}")
        plan: dict[str, object] = {
            "frequency": frequency,
            "interval": self._value("interval"),
            "repetitions": self._value("repetitions"),
        }
        if "at" in own:
            plan["at"] = self._required("at", f"is required for --frequency {frequency} (HH:MM)")
        if frequency is Frequency.DAILY:
            option = self._value("daily_option", DailyOption.EVERY.value)
            if option is not DailyOption.EVERY and "interval" in self.raw:
                raise InvalidInput("interval", f"is not used with --daily-option {option.value}")
            plan["daily_option"] = option
        elif frequency is Frequency.WEEKLY:
            why = "is required for --frequency weekly (e.g. mon,wed,fri)"
            plan["days"] = self._required("days", why)
        elif frequency is Frequency.MONTHLY:
            plan.update(self._month_day(frequency))
        elif frequency is Frequency.YEARLY:
            month = self._required("month", "is required for --frequency yearly (1..12)")
            month_day = self._month_day(frequency)
            self._refuse_missing_day(month, month_day.get("day"))
            plan.update(month=month, **month_day)
        elif frequency is Frequency.CRON:
            plan["cron"] = self._required("cron", "is required for --frequency cron")
        return replace(timing, **plan)  # type: ignore[arg-type]

    def _month_day(self, frequency: Frequency) -> dict[str, Any]:
        raw = self.raw
        if "day" in raw:
            if "ordinal" in raw or "weekday" in raw:
                field = "ordinal" if "ordinal" in raw else "weekday"
                raise InvalidInput(field, "cannot be combined with --day")
            return {"day": self._value("day")}
        if "ordinal" not in raw or "weekday" not in raw:
            missing = "weekday" if "ordinal" in raw else "ordinal" if "weekday" in raw else "day"
            why = f"{frequency} needs --day N|last, or --ordinal with --weekday"
            raise InvalidInput(missing, why)
        return {"ordinal": self._value("ordinal"), "weekday": self._value("weekday")}

    @staticmethod
    def _refuse_missing_day(month: int, day: str | None) -> None:
        """A day that its month never has (30 February) would never fire."""
        longest = calendar.monthrange(LEAP_YEAR, month)[1]
        if day not in (None, "last") and int(day) > longest:
            why = f"must be between 1 and {longest} in {calendar.month_name[month]} (got {day})"
            raise InvalidInput("day", why)

    def _refuse_silent(self, timing: Timing) -> None:
        """A plan with no fire left is refused, naming the field that silences it."""
        if timing.kind is not TimingKind.SCHEDULED:
            return
        anchored = timing.anchored(self.now)
        if anchored.upcoming(self.now, 1):
            return
        if timing.finish is not None and replace(anchored, finish=None).upcoming(self.now, 1):
            raise InvalidInput("finish", "leaves no fire time: every fire would come after it")
        why = "leaves no fire time from now on"
        if timing.frequency is Frequency.CRON:
            raise InvalidInput("cron", why)
        if timing.frequency not in (Frequency.MONTHLY, Frequency.YEARLY):
            raise InvalidInput("repetitions", why)
        if (timing.month, timing.day) == (2, "29"):
            why += " (29 February is only in leap years)"
        raise InvalidInput("day" if timing.day else "interval", why)


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
