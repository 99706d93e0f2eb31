"""Typed values from user text, each refusal naming the field (design §5 error contract).

Shared by timings and process parameters: the CLI hands strings in, these
hand typed values out or raise :class:`InvalidInput`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bgproc.errors import InvalidInput
from bgproc.timing.walltime import resolve_wall

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
YEAR_RANGE = (1970, 2199)  # beyond these, plans are typos, and date arithmetic stays in range
RELATIVE = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INSTANT = "a date-time (use 2027-01-31T09:30, now or +10m)"
MAX_DIGITS_SHOWN = 40  # a longer number is out of every range: said by its length
DURATION = re.compile(r"^(-?\d{1,6})\s*([smhdw])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=100 * 366)  # beyond this, a typo


def field_label(key: str) -> str:
    """A field as the user spells it on the command line (``daily_option`` → ``daily-option``)."""
    return key.replace("_", "-")


def parse_instant(
    text: object, zone: ZoneInfo, now: datetime, field: str, expected: str = INSTANT
) -> datetime:
    """An aware UTC instant from ISO 8601, ``now`` or ``+N[smhd]``; a naive time is in ``zone``.
    ``expected`` is what a refusal says the field takes."""
    if isinstance(text, datetime):
        value = text
    else:
        raw = str(text).strip()
        relative = raw[1:-1] if raw.startswith("+") else ""
        if raw.lower() == "now":
            return now.replace(microsecond=0)
        if relative.isascii() and relative.isdigit() and raw[-1:] in RELATIVE:
            if len(relative) >= 10:
                raise _outside_years(field)
            try:
                delta = timedelta(seconds=int(relative) * RELATIVE[raw[-1]])
                value = now.replace(microsecond=0) + delta
            except OverflowError:  # past the year 9999
                raise _outside_years(field) from None
        else:
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise InvalidInput(field, f"{raw!r} is not {expected}") from None
    if not YEAR_RANGE[0] <= value.year <= YEAR_RANGE[1]:
        raise _outside_years(field)
    if value.tzinfo is None:
        return resolve_wall(value, zone)
    return value.astimezone(UTC)


def parse_duration(text: object, field: str, longest: timedelta = MAX_DURATION) -> timedelta:
    """``30m``, ``12h``, ``7d`` (also ``s``, ``w``) as a positive timedelta, at most
    ``longest``: the one reading of a duration, for pruning and retries alike."""
    match = DURATION.match(str(text).strip().lower())
    if match is None:
        raise InvalidInput(field, f"{text!r} is not a duration (use e.g. 30s, 30m, 12h or 7d)")
    duration = timedelta(seconds=int(match[1]) * UNIT_S[match[2]])
    if not timedelta(0) < duration <= longest:
        raise InvalidInput(
            field, f"{text!r} must be longer than 0 and at most {_spoken(longest)}"
        )
    return duration


def _spoken(duration: timedelta) -> str:
    """A bound as a refusal says it: ``100 years``, ``7 days``."""
    if duration == MAX_DURATION:
        return "100 years"
    days = duration.days
    return f"{days} days" if days > 1 else f"{int(duration.total_seconds())} seconds"


def typed_instant(instant: datetime, zone: ZoneInfo) -> str:
    """An instant as a user types one, in ``zone``: ``2027-01-31T09:30+01:00``."""
    shown = instant.astimezone(zone)
    return shown.isoformat(timespec="seconds" if shown.second else "minutes")


def _outside_years(field: str) -> InvalidInput:
    return InvalidInput(field, f"year must be between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}")


TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def parse_flag(value: object, field: str) -> bool:
    """A yes/no field from the CLI, the API or a form: a bool, or one of the usual words."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise InvalidInput(field, f"{value!r} must be true or false")


def parse_int(value: object, field: str, low: int, high: int) -> int:
    """A whole number within bounds, or an error naming the field and, when the number is
    out of range, the bounds: a huge number is not "not a number"."""
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a whole number")
    text = str(value).strip()
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidInput(field, f"{text!r} is not a whole number")
    if len(digits) > MAX_DIGITS_SHOWN:  # int() refuses thousands of digits; none fits a bound
        got = f"a {len(digits)}-digit number"
    else:
        number = int(text)
        if low <= number <= high:
            return number
        got = str(number)
    raise InvalidInput(field, f"must be between {low} and {high} (got {got})")


def parse_text(value: object, field: str, max_chars: int) -> str:
    """Text every store can hold, bounded: PostgreSQL refuses NUL, and no database can
    encode a lone surrogate (what Python makes of command-line bytes that are not UTF-8)."""
    text = str(value)
    if len(text) > max_chars:
        raise InvalidInput(field, f"longer than {max_chars} characters")
    if "\x00" in text:
        raise InvalidInput(field, "must not contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "is not valid UTF-8 text") from None
    return text


def parse_choice(value: object, field: str, choices: type[StrEnum]) -> StrEnum:
    """One of an enum's values (case-insensitive), or an error listing them."""
    text = str(value).strip().lower()
    try:
        return choices(text)
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise InvalidInput(field, f"{value!r} is not one of: {allowed}") from None


def parse_weekday(value: object, field: str) -> str:
    """``mon``..``sun`` (full names too), as its three-letter form."""
    text = str(value).strip().lower()
    for name in WEEKDAYS:
        if text == name or (
            len(text) > 3 and calendar.day_name[WEEKDAYS.index(name)].lower() == text
        ):
            return name
    raise InvalidInput(field, f"{value!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")


def parse_time_of_day(value: object, field: str) -> time:
    """``HH:MM`` or ``HH:MM:SS`` on a 24-hour clock."""
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None)
    text = str(value).strip()
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(
        p.isascii() and p.isdigit() and len(p) == 2 for p in parts
    ):
        raise InvalidInput(field, f"{text!r} is not a time (use HH:MM or HH:MM:SS)")
    hour, minute, second = (int(p) for p in [*parts, "00"][:3])
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidInput(field, f"{text!r} is not a time of day")
    return time(hour, minute, second)


def parse_zone(value: object) -> str:
    """An IANA zone name that this machine knows."""
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise InvalidInput(
            "tz", f"{name!r} is not a time zone (use an IANA name like Europe/Madrid)"
        ) from None
    if not name:
        raise InvalidInput("tz", "must not be empty")
    return name


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """``("a=1", "b=x=y")`` → ``{"a": "1", "b": "x=y"}``; a pair without ``=`` is refused.
    The one reading of ``--param`` pairs, and of the web form's lines."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput("param", f"{pair!r} is not KEY=VALUE")
        if key in params:
            raise InvalidInput(f"param {key}", "given twice")
        params[key] = value
    return params
