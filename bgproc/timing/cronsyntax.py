"""Cron syntax: Unix 5-field and Quartz 6/7-field text parsed into one :class:`Spec`.

Both dialects land in one representation, which :mod:`bgproc.timing.cron` searches: sorted
tuples of allowed seconds, minutes, hours, months and years, plus a rule set for days.

Semantics decisions (Quartz 2.3.2 is the reference; tests/unit/test_cron_quartz_oracle.py
compares with it and lists every place where we knowingly differ):

* Quartz needs exactly one of day-of-month / day-of-week to be ``?`` (as Quartz does).
* Lists in the day fields are unions of their items: ``1W,15W``, ``1,L``, ``6#3,2#1``, ``6L,2``.
  Quartz refuses some of these and silently mis-evaluates others (``1W,15W`` fires on 1W only,
  ``6#3,2`` fires on the third Monday); the plain meaning is the union.
* ``NW`` in a month that has no day N does not fire (like a plain ``N``: use ``LW`` for month
  ends). Quartz's lenient calendar makes ``31W`` fire on April 30 when May 1 is a Saturday.
* A step after names applies (``SUN-SAT/2`` = Sun, Tue, Thu, Sat); Quartz ignores it.
* Ranges wrap when start > end (``FRI-MON``, ``22-2``, ``NOV-FEB``, dom ``28-3``), in both
  dialects, exactly like Quartz: the range is unrolled past the field's end and each step
  value is folded back. Year ranges cannot wrap.
* Refused although Quartz accepts: step 0 (``*/0``), ``W`` with a range or step, ``#`` or ``nL``
  with a range, names longer than three letters (``MONDAY``), years outside 1970-2099, an 8th
  field. Accepted although Quartz refuses: a range mixing a name and a number (``11-FEB``).
* Quartz 2.3.2 can loop for ever on ``L-nW`` with a large n (seen for n = 28-30, e.g. ``L-30W``);
  we answer, skipping months that have no day L-n, as for ``L-n``.
* Unix: dow 0-7 (0 and 7 are Sunday); Vixie's rule: when both dom and dow are restricted
  (neither starts with ``*``) a day matches if either matches, else both must. ``L``, ``W``,
  ``#`` and ``?`` are Quartz-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bgproc.errors import InvalidInput

_MAX_TEXT = 200  # what a request's cron column holds
_MAX_DIGITS = 4
LAST_YEAR = 2099  # the last year a Quartz year field takes
_ALLOWED = re.compile(r"[0-9A-Za-z*?/,#\- \t]*")
MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_UNIX_DOWS = {d: i for i, d in enumerate(_DAYS)}
_QUARTZ_DOWS = {d: i + 1 for i, d in enumerate(_DAYS)}


def bad(why: str) -> InvalidInput:
    """Every refusal here names the cron field."""
    return InvalidInput("cron", why)


@dataclass(frozen=True)
class _FieldDef:
    """Bounds of one field; ``cycle`` is the wrap length (0: ranges may not wrap)."""

    name: str
    lo: int
    hi: int
    max_step: int
    cycle: int
    names: dict[str, int] | None = None


_SECOND = _FieldDef("second", 0, 59, 59, 60)
_MINUTE = _FieldDef("minute", 0, 59, 59, 60)
_HOUR = _FieldDef("hour", 0, 23, 23, 24)
_DOM = _FieldDef("day-of-month", 1, 31, 31, 31)
_MONTH = _FieldDef("month", 1, 12, 12, 12, _MONTHS)
_UNIX_DOW = _FieldDef("day-of-week", 0, 7, 7, 7, _UNIX_DOWS)
_QUARTZ_DOW = _FieldDef("day-of-week", 1, 7, 7, 7, _QUARTZ_DOWS)
_YEAR = _FieldDef("year", 1970, LAST_YEAR, 129, 0)


def clip(text: str) -> str:
    """Keep a reason short even when the user pasted something huge."""
    return text if len(text) <= 20 else text[:20] + "…"


def _number(token: str, fd: _FieldDef) -> int:
    """One value: ASCII digits or a three-letter name, checked against the field's bounds."""
    if token.isascii() and token.isdigit():
        if len(token) > _MAX_DIGITS:
            raise bad(f"{fd.name} value {clip(token)} is too large")
        value = int(token)
        if not fd.lo <= value <= fd.hi:
            raise bad(f"{fd.name} {value} out of range {fd.lo}-{fd.hi}")
        return value
    up = token.upper()
    if fd.names is not None and up in fd.names:
        return fd.names[up]
    for ch in "LW#":
        if ch in up and not (fd.names is not None and up.isalpha() and len(up) > 1):
            raise bad(f"'{ch}' cannot be used in {fd.name} here ({clip(token)!r})")
    if fd.names is not None and up.isalpha():
        kind, first, last = ("month", "JAN", "DEC") if fd is _MONTH else ("day", "SUN", "SAT")
        raise bad(f"unknown {kind} name {clip(token)!r} (use {first}-{last})")
    raise bad(f"{fd.name} must be a number, not {clip(token)!r}")


def _values(item: str, fd: _FieldDef) -> list[int]:
    """Expand one list item (``*``, ``a``, ``a-b``, each with an optional ``/step``)."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise bad(f"bad {fd.name} step {clip(step_text)!r} in {clip(item)!r}")
        step = int(step_text) if len(step_text) <= _MAX_DIGITS else 10**_MAX_DIGITS
        if not 1 <= step <= fd.max_step:
            raise bad(f"{fd.name} step {clip(step_text)} out of range 1-{fd.max_step}")
    if base == "*":
        start, stop = fd.lo, fd.hi
    elif "-" in base:
        a, _, b = base.partition("-")
        if not a or not b:
            raise bad(f"bad {fd.name} range {clip(item)!r}")
        start, stop = _number(a, fd), _number(b, fd)
        if stop < start:
            if not fd.cycle:
                raise bad(f"{fd.name} range {base} goes backwards")
            stop += fd.cycle
    elif base:
        start = _number(base, fd)
        stop = fd.hi if slash else start
    else:
        raise bad(f"empty value in {fd.name} item {clip(item)!r}" if item
                   else f"empty item in {fd.name}")
    if not fd.cycle:
        return list(range(start, stop + 1, step))
    return [fd.lo + (v - fd.lo) % fd.cycle for v in range(start, stop + 1, step)]


def _plain_field(text: str, fd: _FieldDef) -> tuple[int, ...]:
    """A whole non-day field as the sorted tuple of its allowed values."""
    if "?" in text:
        raise bad(f"'?' is only allowed in day-of-month or day-of-week, not in {fd.name}")
    values: set[int] = set()
    for item in text.split(","):
        values.update(_values(item, fd))
    return tuple(sorted(values))


_NEAREST = re.compile(r"(\d+)W")
_LAST_DOM = re.compile(r"L(?:-(\d+))?(W?)")
_NTH = re.compile(r"([^#]*)#(.*)")
_LAST_DOW = re.compile(r"([0-9]+|[A-Z]{3})L")


@dataclass(frozen=True)
class _DayRules:
    """Which days of a month match, given the month's length and its first weekday.

    Weekdays are 0=Sunday..6=Saturday here in both dialects. ``both`` is Vixie's AND (either
    Unix day field starts with ``*``); otherwise the dom side and the dow side are OR-ed, and an
    unused side (Quartz ``?``) is empty.
    """

    dom: frozenset[int] = frozenset()
    dow: frozenset[int] = frozenset()
    last: tuple[int, ...] = ()  # L-n offsets
    nearest: tuple[int, ...] = ()  # NW days
    last_weekday: tuple[int, ...] = ()  # L-nW offsets (LW is 0)
    dow_last: tuple[int, ...] = ()  # nL weekdays
    dow_nth: tuple[tuple[int, int], ...] = ()  # n#k (weekday, k)
    both: bool = False

    def days(self, ldom: int, wd1: int) -> tuple[int, ...]:
        """Matching days of a month with ``ldom`` days whose 1st is weekday ``wd1``."""
        a = {d for d in self.dom if d <= ldom}
        for n in self.last:
            if ldom - n >= 1:
                a.add(ldom - n)
        for d in self.nearest:
            if d <= ldom:
                a.add(_nearest_weekday(d, ldom, wd1))
        for n in self.last_weekday:
            if ldom - n >= 1:
                a.add(_nearest_weekday(ldom - n, ldom, wd1))
        b: set[int] = set()
        for w in self.dow:
            b.update(range(1 + (w - wd1) % 7, ldom + 1, 7))
        last_wd = (wd1 + ldom - 1) % 7
        for w in self.dow_last:
            b.add(ldom - (last_wd - w) % 7)
        for w, k in self.dow_nth:
            d = 1 + (w - wd1) % 7 + 7 * (k - 1)
            if d <= ldom:
                b.add(d)
        return tuple(sorted(a & b if self.both else a | b))


def _nearest_weekday(d: int, ldom: int, wd1: int) -> int:
    """Quartz ``W``: the weekday nearest day ``d``, never leaving the month."""
    wd = (wd1 + d - 1) % 7
    if wd == 6:  # Saturday: Friday before, or Monday the 3rd when d is the 1st
        return d + 2 if d == 1 else d - 1
    if wd == 0:  # Sunday: Monday after, or Friday before when d is the last day
        return d - 2 if d == ldom else d + 1
    return d


def _quartz_dom(text: str) -> _DayRules:
    dom: set[int] = set()
    last: set[int] = set()
    nearest: set[int] = set()
    last_wd: set[int] = set()
    for item in text.upper().split(","):
        if m := _LAST_DOM.fullmatch(item):
            offset = m.group(1)
            n = 0
            if offset is not None:
                if len(offset) > 2 or int(offset) > 30:
                    raise bad(f"offset from last day must be 0-30, got {clip(offset)}")
                n = int(offset)
            (last_wd if m.group(2) else last).add(n)
        elif m := _NEAREST.fullmatch(item):
            nearest.add(_number(m.group(1), _DOM))
        elif "W" in item:
            raise bad(f"'W' needs one day of the month (e.g. 15W or LW), not {clip(item)!r}")
        elif "L" in item:
            raise bad(f"'L' in day-of-month must be L, L-n, LW or L-nW, not {clip(item)!r}")
        elif "#" in item:
            raise bad("'#' is only allowed in day-of-week")
        else:
            dom.update(_values(item, _DOM))
    return _DayRules(
        dom=frozenset(dom), last=tuple(sorted(last)), nearest=tuple(sorted(nearest)),
        last_weekday=tuple(sorted(last_wd)),
    )


def _quartz_dow(text: str) -> _DayRules:
    dow: set[int] = set()
    dow_last: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for item in text.upper().split(","):
        if item == "L":  # Quartz: 'L' alone in day-of-week is 7, Saturday
            dow.add(6)
        elif m := _NTH.fullmatch(item):
            day, k = m.groups()
            if not (day.isdigit() or day in _QUARTZ_DOWS):
                raise bad(f"'#' needs one weekday before it (e.g. 6#3), not {clip(day)!r}")
            if not (k.isdigit() and len(k) == 1 and 1 <= int(k) <= 5):
                raise bad(f"'#' must be followed by 1-5 (n#k: k-th weekday n), not {clip(k)!r}")
            nth.add((_number(day, _QUARTZ_DOW) - 1, int(k)))
        elif m := _LAST_DOW.fullmatch(item):
            dow_last.add(_number(m.group(1), _QUARTZ_DOW) - 1)
        elif "#" in item:
            raise bad(f"'#' needs one weekday and a number 1-5 (e.g. 6#3), not {clip(item)!r}")
        else:
            dow.update(v - 1 for v in _values(item, _QUARTZ_DOW))
    return _DayRules(dow=frozenset(dow), dow_last=tuple(sorted(dow_last)),
                     dow_nth=tuple(sorted(nth)))


def _unix_days(dom_text: str, dow_text: str) -> _DayRules:
    dom = frozenset(_plain_field(dom_text, _DOM))
    dow = frozenset(v % 7 for v in _plain_field(dow_text, _UNIX_DOW))
    both = dom_text.startswith("*") or dow_text.startswith("*")
    return _DayRules(dom=dom, dow=dow, both=both)


def check_chars(text: str) -> None:
    if len(text) > _MAX_TEXT:
        raise bad(f"expression too long ({len(text)} characters, at most {_MAX_TEXT})")
    if not _ALLOWED.fullmatch(text):
        char = next(ch for ch in text if not _ALLOWED.fullmatch(ch))
        raise bad(f"unexpected character {char!a}")


@dataclass(frozen=True)
class Spec:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...] | None
    days: _DayRules


def parse_spec(text: str) -> tuple[str, Spec]:
    """Return (dialect, spec) or raise InvalidInput with a one-line reason."""
    check_chars(text)
    parts = text.split()
    if not parts:
        raise bad("empty expression")
    if len(parts) == 5:
        minute, hour, dom, month, dow = parts
        for part, fd in zip(parts, (_MINUTE, _HOUR, _DOM, _MONTH, _UNIX_DOW), strict=True):
            _no_quartz_syntax(part, fd)
        return "unix", Spec(
            seconds=(0,), minutes=_plain_field(minute, _MINUTE), hours=_plain_field(hour, _HOUR),
            months=_plain_field(month, _MONTH), years=None, days=_unix_days(dom, dow),
        )
    if len(parts) in (6, 7):
        second, minute, hour, dom, month, dow = parts[:6]
        if dom == "?" and dow == "?":
            raise bad("'?' may be used in only one of day-of-month and day-of-week")
        if dom != "?" and dow != "?":
            raise bad("Quartz needs '?' in day-of-month or day-of-week (e.g. '0 0 12 ? * MON' "
                       "or '0 0 12 1 * ?')")
        if dom == "?":
            days = _quartz_dow(_no_question(dow, _QUARTZ_DOW))
        else:
            days = _quartz_dom(_no_question(dom, _DOM))
        years = None
        if len(parts) == 7 and parts[6] != "*":
            years = _plain_field(parts[6], _YEAR)
        return "quartz", Spec(
            seconds=_plain_field(second, _SECOND), minutes=_plain_field(minute, _MINUTE),
            hours=_plain_field(hour, _HOUR), months=_plain_field(month, _MONTH), years=years,
            days=days,
        )
    raise bad(f"expected 5 fields (Unix) or 6-7 fields (Quartz), got {len(parts)}")


def _no_quartz_syntax(part: str, fd: _FieldDef) -> None:
    """Say "Quartz syntax" for ?, L, W and # in a Unix field (but JUL and WED are names)."""
    for token in re.split(r"[,\-/]", part.upper()):
        if fd.names is not None and token in fd.names:
            continue
        for ch in "?LW#":
            if ch in token:
                raise bad(f"'{ch}' is Quartz syntax (6 or 7 fields), not allowed in Unix cron")


def _no_question(text: str, fd: _FieldDef) -> str:
    if "?" in text:
        raise bad(f"'?' must stand alone in {fd.name}, not {clip(text)!r}")
    return text


def wrapping_step(text: str, dialect: str) -> bool:
    """Has the day-of-week ``text`` (valid) an item like ``FRI-MON/2``: a range that wraps,
    with a step?"""
    fd = _UNIX_DOW if dialect == "unix" else _QUARTZ_DOW
    for item in text.split(","):
        base, slash, _ = item.partition("/")
        a, dash, b = base.partition("-")
        if slash and dash and _number(a, fd) > _number(b, fd):
            return True
    return False
