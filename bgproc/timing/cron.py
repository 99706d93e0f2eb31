"""Cron expressions: Unix 5-field and Quartz 6/7-field, evaluated in naive wall-clock time.

Etendo users paste Quartz expressions and Unix users paste crontab lines, so both dialects are
parsed here into one representation (sorted tuples of allowed seconds, minutes, hours, months and
years, plus a rule set for days) and evaluated by one search that moves field by field
(year -> month -> day -> hour -> minute -> second) instead of scanning time. DST is not handled
here: callers map wall times to instants.

Why our own matcher and not croniter (checked against tests/unit/cron_oracle.py):

* Quartz: croniter reads ``6#3`` with Unix day numbers (Saturday instead of Friday), refuses
  ``LW``, ``L-3`` and ``6L`` and has no year field.
* Unix, where croniter 7 is wrong too:
  - Vixie's OR rule: croniter decides it on the *expanded* fields, so ``0 0 */2 * 1`` is "odd
    days OR Mondays" there; Vixie/cronie treat a field starting with ``*`` as unrestricted:
    "odd days that are Mondays".
  - ``a/n`` in day-of-week loses 7 (Sunday): ``1/3`` is Mon, Thu, Sun, croniter drops Sunday.
  - ``SUN-SUN`` is Sunday; croniter fires every day.
  - A step over a wrapping range restarts at the wrap (``59-23/3``: 59, 0, 3...); we follow
    Quartz and let it run on (59, 2, 5...).
  - It raises instead of answering "never" (``0 0 30 2 *``).
  Using it "where it is right" would mean routing per expression shape for no gain; one engine
  for both dialects is simpler. tests/unit/test_cron.py pins these divergences.

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
* Searches are bounded by 401 years: the Gregorian calendar repeats every 400 years, so an
  expression that finds nothing in that window never fires, and ``next_after`` returns None
  (Quartz gives up at this year + 100 instead).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bgproc.errors import InvalidInput

__all__ = ["CronExpression"]

_MAX_TEXT = 200  # what a request's cron column holds
_MAX_DIGITS = 4
_SEARCH_YEARS = 401
_ALLOWED = re.compile(r"[0-9A-Za-z*?/,#\- \t]*")
_MDAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_UNIX_DOWS = {d: i for i, d in enumerate(_DAYS)}
_QUARTZ_DOWS = {d: i + 1 for i, d in enumerate(_DAYS)}


def _bad(why: str) -> InvalidInput:
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
_YEAR = _FieldDef("year", 1970, 2099, 129, 0)


def _clip(text: str) -> str:
    """Keep a reason short even when the user pasted something huge."""
    return text if len(text) <= 20 else text[:20] + "…"


def _number(token: str, fd: _FieldDef) -> int:
    """One value: ASCII digits or a three-letter name, checked against the field's bounds."""
    if token.isascii() and token.isdigit():
        if len(token) > _MAX_DIGITS:
            raise _bad(f"{fd.name} value {_clip(token)} is too large")
        value = int(token)
        if not fd.lo <= value <= fd.hi:
            raise _bad(f"{fd.name} {value} out of range {fd.lo}-{fd.hi}")
        return value
    up = token.upper()
    if fd.names is not None and up in fd.names:
        return fd.names[up]
    for ch in "LW#":
        if ch in up and not (fd.names is not None and up.isalpha() and len(up) > 1):
            raise _bad(f"'{ch}' cannot be used in {fd.name} here ({_clip(token)!r})")
    if fd.names is not None and up.isalpha():
        kind, first, last = ("month", "JAN", "DEC") if fd is _MONTH else ("day", "SUN", "SAT")
        raise _bad(f"unknown {kind} name {_clip(token)!r} (use {first}-{last})")
    raise _bad(f"{fd.name} must be a number, not {_clip(token)!r}")


def _values(item: str, fd: _FieldDef) -> list[int]:
    """Expand one list item (``*``, ``a``, ``a-b``, each with an optional ``/step``)."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise _bad(f"bad {fd.name} step {_clip(step_text)!r} in {_clip(item)!r}")
        step = int(step_text) if len(step_text) <= _MAX_DIGITS else 10**_MAX_DIGITS
        if not 1 <= step <= fd.max_step:
            raise _bad(f"{fd.name} step {_clip(step_text)} out of range 1-{fd.max_step}")
    if base == "*":
        start, stop = fd.lo, fd.hi
    elif "-" in base:
        a, _, b = base.partition("-")
        if not a or not b:
            raise _bad(f"bad {fd.name} range {_clip(item)!r}")
        start, stop = _number(a, fd), _number(b, fd)
        if stop < start:
            if not fd.cycle:
                raise _bad(f"{fd.name} range {base} goes backwards")
            stop += fd.cycle
    elif base:
        start = _number(base, fd)
        stop = fd.hi if slash else start
    else:
        raise _bad(f"empty value in {fd.name} item {_clip(item)!r}" if item
                   else f"empty item in {fd.name}")
    if not fd.cycle:
        return list(range(start, stop + 1, step))
    return [fd.lo + (v - fd.lo) % fd.cycle for v in range(start, stop + 1, step)]


def _plain_field(text: str, fd: _FieldDef) -> tuple[int, ...]:
    """A whole non-day field as the sorted tuple of its allowed values."""
    if "?" in text:
        raise _bad(f"'?' is only allowed in day-of-month or day-of-week, not in {fd.name}")
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
                    raise _bad(f"offset from last day must be 0-30, got {_clip(offset)}")
                n = int(offset)
            (last_wd if m.group(2) else last).add(n)
        elif m := _NEAREST.fullmatch(item):
            nearest.add(_number(m.group(1), _DOM))
        elif "W" in item:
            raise _bad(f"'W' needs one day of the month (e.g. 15W or LW), not {_clip(item)!r}")
        elif "L" in item:
            raise _bad(f"'L' in day-of-month must be L, L-n, LW or L-nW, not {_clip(item)!r}")
        elif "#" in item:
            raise _bad("'#' is only allowed in day-of-week")
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
                raise _bad(f"'#' needs one weekday before it (e.g. 6#3), not {_clip(day)!r}")
            if not (k.isdigit() and len(k) == 1 and 1 <= int(k) <= 5):
                raise _bad(f"'#' must be followed by 1-5 (n#k: k-th weekday n), not {_clip(k)!r}")
            nth.add((_number(day, _QUARTZ_DOW) - 1, int(k)))
        elif m := _LAST_DOW.fullmatch(item):
            dow_last.add(_number(m.group(1), _QUARTZ_DOW) - 1)
        elif "#" in item:
            raise _bad(f"'#' needs one weekday and a number 1-5 (e.g. 6#3), not {_clip(item)!r}")
        else:
            dow.update(v - 1 for v in _values(item, _QUARTZ_DOW))
    return _DayRules(dow=frozenset(dow), dow_last=tuple(sorted(dow_last)),
                     dow_nth=tuple(sorted(nth)))


def _unix_days(dom_text: str, dow_text: str) -> _DayRules:
    dom = frozenset(_plain_field(dom_text, _DOM))
    dow = frozenset(v % 7 for v in _plain_field(dow_text, _UNIX_DOW))
    both = dom_text.startswith("*") or dow_text.startswith("*")
    return _DayRules(dom=dom, dow=dow, both=both)


def _check_chars(text: str) -> None:
    if len(text) > _MAX_TEXT:
        raise _bad(f"expression too long ({len(text)} characters, at most {_MAX_TEXT})")
    if not _ALLOWED.fullmatch(text):
        bad = next(ch for ch in text if not _ALLOWED.fullmatch(ch))
        raise _bad(f"unexpected character {bad!a}")


@dataclass(frozen=True)
class _Spec:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...] | None
    days: _DayRules


def _parse(text: str) -> tuple[str, _Spec]:
    """Return (dialect, spec) or raise InvalidInput with a one-line reason."""
    _check_chars(text)
    parts = text.split()
    if not parts:
        raise _bad("empty expression")
    if len(parts) == 5:
        minute, hour, dom, month, dow = parts
        for part, fd in zip(parts, (_MINUTE, _HOUR, _DOM, _MONTH, _UNIX_DOW), strict=True):
            _no_quartz_syntax(part, fd)
        return "unix", _Spec(
            seconds=(0,), minutes=_plain_field(minute, _MINUTE), hours=_plain_field(hour, _HOUR),
            months=_plain_field(month, _MONTH), years=None, days=_unix_days(dom, dow),
        )
    if len(parts) in (6, 7):
        second, minute, hour, dom, month, dow = parts[:6]
        if dom == "?" and dow == "?":
            raise _bad("'?' may be used in only one of day-of-month and day-of-week")
        if dom != "?" and dow != "?":
            raise _bad("Quartz needs '?' in day-of-month or day-of-week (e.g. '0 0 12 ? * MON' "
                       "or '0 0 12 1 * ?')")
        if dom == "?":
            days = _quartz_dow(_no_question(dow, _QUARTZ_DOW))
        else:
            days = _quartz_dom(_no_question(dom, _DOM))
        years = None
        if len(parts) == 7 and parts[6] != "*":
            years = _plain_field(parts[6], _YEAR)
        return "quartz", _Spec(
            seconds=_plain_field(second, _SECOND), minutes=_plain_field(minute, _MINUTE),
            hours=_plain_field(hour, _HOUR), months=_plain_field(month, _MONTH), years=years,
            days=days,
        )
    raise _bad(f"expected 5 fields (Unix) or 6-7 fields (Quartz), got {len(parts)}")


def _no_quartz_syntax(part: str, fd: _FieldDef) -> None:
    """Say "Quartz syntax" for ?, L, W and # in a Unix field (but JUL and WED are names)."""
    for token in re.split(r"[,\-/]", part.upper()):
        if fd.names is not None and token in fd.names:
            continue
        for ch in "?LW#":
            if ch in token:
                raise _bad(f"'{ch}' is Quartz syntax (6 or 7 fields), not allowed in Unix cron")


def _no_question(text: str, fd: _FieldDef) -> str:
    if "?" in text:
        raise _bad(f"'?' must stand alone in {fd.name}, not {_clip(text)!r}")
    return text


def _wrapping_step(text: str, fd: _FieldDef) -> bool:
    """Has ``text`` (valid) an item like ``FRI-MON/2``: a range that wraps, with a step?"""
    for item in text.split(","):
        base, slash, _ = item.partition("/")
        a, dash, b = base.partition("-")
        if slash and dash and _number(a, fd) > _number(b, fd):
            return True
    return False


def _ceil(seq: tuple[int, ...], x: int) -> int | None:
    """Smallest element of sorted ``seq`` that is >= x, or None."""
    i = bisect_left(seq, x)
    return seq[i] if i < len(seq) else None


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression; ``parse`` is the way to build one."""

    text: str
    dialect: str
    _spec: _Spec = field(init=False, repr=False, compare=False)
    # (ldom, weekday of the 1st) -> matching days; at most 28 keys, so it never grows further.
    _month_days: dict[tuple[int, int], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise _bad("expression must be text")
        dialect, spec = _parse(self.text)
        if dialect != self.dialect:
            raise _bad(f"{_clip(self.text)!r} is a {dialect} expression, not {self.dialect}")
        object.__setattr__(self, "_spec", spec)

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Validate ``text``; raise InvalidInput("cron", reason) when it is no cron expression."""
        if not isinstance(text, str):
            raise _bad("expression must be text")
        stripped = text.strip()
        _check_chars(stripped)
        n = len(stripped.split())
        dialect = "unix" if n == 5 else "quartz" if n in (6, 7) else ""
        if not dialect:
            _parse(stripped)  # raises the precise reason (empty, field count)
        return cls(stripped, dialect)

    def _days(self, y: int, m: int) -> tuple[int, ...]:
        ldom = 29 if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else _MDAYS[m]
        key = (ldom, (date(y, m, 1).weekday() + 1) % 7)
        days = self._month_days.get(key)
        if days is None:
            days = self._month_days[key] = self._spec.days.days(*key)
        return days

    def _never(self) -> bool:
        """True when no allowed month can ever have a matching day (e.g. Feb 30)."""
        cached = self._month_days.get((0, 0))  # (0, 0) is never a real month: our flag slot
        if cached is None:
            fires = any(
                self._spec.days.days(ldom, wd)
                for m in self._spec.months
                for ldom in ((28, 29) if m == 2 else (_MDAYS[m],))
                for wd in range(7)
            )
            cached = self._month_days[(0, 0)] = (1,) if fires else ()
        return not cached

    def next_after(self, wall: datetime) -> datetime | None:
        """First matching naive wall time strictly after ``wall`` (whole seconds), or None."""
        if wall.tzinfo is not None:
            raise TypeError("next_after works on naive wall-clock datetimes")
        if self._never():
            return None
        try:
            t = wall.replace(microsecond=0) + timedelta(seconds=1)
        except OverflowError:
            return None
        spec = self._spec
        seconds, minutes, hours, months, years = (
            spec.seconds, spec.minutes, spec.hours, spec.months, spec.years)
        y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second
        y_end = min(9999, t.year + _SEARCH_YEARS if years is None else years[-1])
        while y <= y_end:
            if years is not None:
                y2 = _ceil(years, y)
                if y2 is None:
                    return None
                if y2 != y:
                    y, mo, d, h, mi, s = y2, 1, 1, 0, 0, 0
            mo2 = _ceil(months, mo)
            if mo2 is None:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if mo2 != mo:
                mo, d, h, mi, s = mo2, 1, 0, 0, 0
            d2 = _ceil(self._days(y, mo), d)
            if d2 is None:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if d2 != d:
                d, h, mi, s = d2, 0, 0, 0
            h2 = _ceil(hours, h)
            if h2 is None:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            mi2 = _ceil(minutes, mi)
            if mi2 is None:
                h, mi, s = h + 1, 0, 0
                continue
            if mi2 != mi:
                mi, s = mi2, 0
            s2 = _ceil(seconds, s)
            if s2 is None:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, s2)
        return None

    def describe(self) -> str:
        """Human text from cron_descriptor, or ``cron <text>`` where it would be wrong or fails."""
        parts = self.text.upper().split()
        if self.dialect == "quartz":
            parts = parts + ["*"] * (7 - len(parts))
            dom, dow = parts[3], parts[5]
            if dow == "L":
                parts[5] = "7"
            # cron_descriptor drops the W of L-nW and garbles lists holding L, W or #.
            if re.search(r"L-\d+W", dom) or ("," in dom and re.search("[LW]", dom)):
                return self._fallback()
            if "," in dow and any("#" in i or i.endswith("L") for i in dow.split(",")):
                return self._fallback()
            if parts[6] not in ("*", "?") and re.fullmatch(r"\d+/\d+", parts[6]):
                start, step = parts[6].split("/")
                parts[6] = f"{start}-{_YEAR.hi}/{step}"
        else:
            dom, dow = parts[2], parts[4]
            # Vixie ANDs the days when either field starts with '*'; cron_descriptor says "or".
            if dom.startswith("*") and dom != "*" and not dow.startswith("*"):
                return self._fallback()
        # ... and reads a stepped, wrapping weekday range (FRI-MON/2) as "every 2 weeks".
        if _wrapping_step(dow, _UNIX_DOW if self.dialect == "unix" else _QUARTZ_DOW):
            return self._fallback()
        from cron_descriptor import ExpressionDescriptor, Options  # only a description needs it

        options = Options()
        options.day_of_week_start_index_zero = self.dialect == "unix"
        options.use_24hour_time_format = True
        try:
            text = ExpressionDescriptor(" ".join(parts), options).get_description()
        except Exception:  # cron_descriptor raises its own and stdlib errors; all mean "can't"
            return self._fallback()
        return text if text and text.strip() else self._fallback()

    def _fallback(self) -> str:
        return f"cron {self.text}"
