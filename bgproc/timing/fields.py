"""A timing's fields, each declared once: its key, option, help and parser (design §2).

The CLI and the web derive their options from :data:`TIMING_FIELDS`; :func:`read_input` reads
loose user input and :func:`read_document` the stored JSON document, with the vocabularies the
fields take. The value they make, and when it fires, is :class:`bgproc.timing.plan.Timing`.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from enum import StrEnum
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


TIMING_VERSION = 1  # the "v" of the stored document; a reader refuses any other
STORED_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # stored instants are absolute, never "now"
LEAP_YEAR = 2000  # any leap year: where each month is at its longest


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
INTERVAL_FREQUENCIES = frozenset({Frequency.SECONDS, Frequency.MINUTES, Frequency.HOURLY})
PLAN_FIELDS = frozenset().union(*FIELDS_OF.values())
PLAN_KEYS = frozenset({"frequency", *PLAN_FIELDS})  # what a new --timing or --frequency replaces


# -- the stored document ------------------------------------------------------


def field_values(timing: object) -> dict[str, object]:
    """The fields set on ``timing``, keyed as :data:`TIMING_FIELDS` name them and JSON-able
    (ISO text for instants and times)."""
    fields: dict[str, object] = {}
    for field in TIMING_FIELDS:
        value = getattr(timing, field.attr)
        if value is not None and value != ():
            fields[field.key] = _plain(value)
    return fields


def _plain(value: object) -> object:
    """A field's value as JSON holds it."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime | time):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def read_document(document: Mapping[str, object]) -> dict[str, Any]:
    """The Timing attributes of a stored document. Each value is read back by its field's own
    parser, so a document damaged in storage is refused naming the field."""
    if document.get("v") != TIMING_VERSION:
        raise ValueError(f"timing version {document.get('v')!r} is not {TIMING_VERSION}")
    for key in ("timing", "tz"):
        if document.get(key) is None:
            raise ValueError(f"timing document without {key!r}")
    context = _Context(ZoneInfo(parse_zone(document["tz"])), STORED_NOW)
    return {
        field.attr: field.read(document[field.key], context)
        for field in TIMING_FIELDS
        if document.get(field.key) is not None
    }


# -- user input ---------------------------------------------------------------


def read_input(fields: dict[str, object], now: datetime, default_tz: str) -> dict[str, Any]:
    """The Timing attributes of loose user input, refusing the first bad field; whether the
    plan ever fires is for the timing itself to say."""
    return _InputReader(fields, now, default_tz).read()


class _InputReader:
    """Turns loose fields into a timing's attributes, refusing the first bad one."""

    def __init__(self, fields: dict[str, object], now: datetime, default_tz: str) -> None:
        self.raw = {k: v for k, v in fields.items() if v is not None}
        self.now = now
        self.default_tz = default_tz
        self.context = _Context(ZoneInfo("UTC"), now)  # until the request's zone is read

    def _value(self, key: str, default: object = None) -> Any:
        """The field's value read from the input (or from ``default``); None when absent."""
        value = self.raw.get(key, default)
        return None if value is None else FIELD[key].read(value, self.context)

    def read(self) -> dict[str, Any]:
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
        values = {"kind": kind, "timezone": timezone, "start": start, "finish": finish}
        if kind is TimingKind.SCHEDULED:
            values.update(self._plan())
        begin = start or self.now.replace(microsecond=0)
        if finish is not None and finish < begin:
            zone = self.context.zone
            shown = typed_instant(begin, zone)  # without --start, the start is now: say so
            raise InvalidInput(
                "finish",
                f"{typed_instant(finish, zone)} is before the start "
                f"({shown if start else 'now, ' + shown})",
            )
        return values

    def _refuse_extra(self, allowed: set[str], why: str) -> None:
        for key in sorted(PLAN_FIELDS - allowed):
            if key in self.raw:
                raise InvalidInput(field_label(key), why)

    def _required(self, key: str, why: str) -> Any:
        if key not in self.raw:
            raise InvalidInput(field_label(key), why)
        return self._value(key)

    def _plan(self) -> dict[str, Any]:
        frequency = self._required("frequency", "is required for --timing scheduled")
        own = FIELDS_OF[frequency]
        self._refuse_extra(own, f"is not used by --frequency {frequency.value}")
        plan: dict[str, Any] = {
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
        return plan

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
