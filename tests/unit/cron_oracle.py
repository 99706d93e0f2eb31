"""An independent, deliberately naive cron evaluator used only to check bgproc.timing.cron.

It decides by the plain meaning of each field, one timestamp at a time, and shares no code
with bgproc.timing.cron: ``matches`` looks at a single wall time, ``brute_next`` walks forward
day by day and then through hours, minutes and seconds in order. It assumes the expression is
valid (the tests only feed it expressions that bgproc.timing.cron accepted).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from functools import lru_cache

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@lru_cache(maxsize=4096)
def _fields(text: str) -> tuple[str, list[str]]:
    """Return (dialect, [second, minute, hour, dom, month, dow, year]) in upper case."""
    parts = text.upper().split()
    if len(parts) == 5:
        return "unix", ["0", *parts, "*"]
    if len(parts) == 6:
        return "quartz", [*parts, "*"]
    return "quartz", parts


def _num(token: str, names: list[str] | None, first: int) -> int:
    if names and token in names:
        return names.index(token) + first
    return int(token)


def _item_has(item: str, value: int, lo: int, hi: int, names=None, first=0) -> bool:
    """Does one list item (``*``, ``a``, ``a-b``, ``a/n``, ``a-b/n``) contain ``value``?

    A range whose start is after its end goes round the end of the field (``FRI-MON``).
    """
    base, _, step_text = item.partition("/")
    step = int(step_text) if step_text else 1
    if base == "*":
        a, b = lo, hi
    elif "-" in base:
        a_text, b_text = base.split("-")
        a, b = _num(a_text, names, first), _num(b_text, names, first)
    else:
        a = _num(base, names, first)
        b = hi if step_text else a
    if a <= b:
        return a <= value <= b and (value - a) % step == 0
    size = hi - lo + 1
    return (value >= a or value <= b) and ((value - a) % size) % step == 0


def _field_has(field: str, value: int, lo: int, hi: int, names=None, first=0) -> bool:
    return any(_item_has(item, value, lo, hi, names, first) for item in field.split(","))


def _quartz_dow(d: date) -> int:
    """1=Sunday .. 7=Saturday, as Quartz counts."""
    return (d.weekday() + 1) % 7 + 1


def _last_day(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _nearest_weekday(d: date, n: int) -> int | None:
    """The Monday-Friday day of d's month closest to day n (None when the month has no day n)."""
    last = _last_day(d)
    if not 1 <= n <= last:
        return None
    weekdays = [x for x in range(1, last + 1) if date(d.year, d.month, x).weekday() < 5]
    return min(weekdays, key=lambda x: abs(x - n))


def _dom_item(item: str, d: date) -> bool:
    last = _last_day(d)
    if item.startswith("L"):
        offset = int(item[2:].rstrip("W") or 0) if item.startswith("L-") else 0
        target = last - offset
        if target < 1:
            return False
        if item.endswith("W"):
            return _nearest_weekday(d, target) == d.day
        return d.day == target
    if item.endswith("W"):
        return _nearest_weekday(d, int(item[:-1])) == d.day
    return _item_has(item, d.day, 1, 31)


def _dow_item_quartz(item: str, d: date) -> bool:
    wd = _quartz_dow(d)
    if item == "L":
        return wd == 7
    if "#" in item:
        day, k = item.split("#")
        return wd == _num(day, DAYS, 1) and (d.day - 1) // 7 + 1 == int(k)
    if item.endswith("L"):
        return wd == _num(item[:-1], DAYS, 1) and d.day + 7 > _last_day(d)
    return _item_has(item, wd, 1, 7, DAYS, 1)


def _dow_unix(field: str, d: date) -> bool:
    """Unix day-of-week: 0 and 7 are both Sunday; a range may go round the week (FRI-MON)."""
    wd = (d.weekday() + 1) % 7  # 0=Sunday
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        if "-" in base:
            a_text, b_text = base.split("-")
            a, b = _num(a_text, DAYS, 0), _num(b_text, DAYS, 0)
            if a > b:  # walk forward from a round the 7-day week to b
                step = int(step_text) if step_text else 1
                if wd in {(a + k) % 7 for k in range(0, (b - a) % 7 + 1, step)}:
                    return True
                continue
        if any(_item_has(item, v, 0, 7, DAYS, 0) for v in ((0, 7) if wd == 0 else (wd,))):
            return True
    return False


def day_matches(text: str, d: date) -> bool:
    """Do year, month and the day rules of ``text`` allow date ``d``?"""
    dialect, (_, _, _, dom, month, dow, year) = _fields(text)
    if year != "*" and not _field_has(year, d.year, 1970, 2099):
        return False
    if not _field_has(month, d.month, 1, 12, MONTHS, 1):
        return False
    if dialect == "unix":
        dom_ok = _field_has(dom, d.day, 1, 31)
        dow_ok = _dow_unix(dow, d)
        if dom.startswith("*") or dow.startswith("*"):
            return dom_ok and dow_ok
        return dom_ok or dow_ok
    if dom == "?":
        return any(_dow_item_quartz(item, d) for item in dow.split(","))
    return any(_dom_item(item, d) for item in dom.split(","))


def time_matches(text: str, t: time) -> bool:
    _, (second, minute, hour, *_rest) = _fields(text)
    return (
        _field_has(hour, t.hour, 0, 23)
        and _field_has(minute, t.minute, 0, 59)
        and _field_has(second, t.second, 0, 59)
    )


def matches(text: str, wall: datetime) -> bool:
    """Does the naive wall time ``wall`` (whole seconds) match ``text``?"""
    return wall.microsecond == 0 and day_matches(text, wall.date()) and time_matches(
        text, wall.time())


def brute_next(text: str, wall: datetime, days: int = 400) -> datetime | None:
    """First matching whole-second wall time strictly after ``wall`` within ``days`` days."""
    _, (second, minute, hour, *_rest) = _fields(text)
    day = wall.date()
    for _ in range(days + 1):
        if day_matches(text, day):
            for h in range(24):
                if not _field_has(hour, h, 0, 23):
                    continue
                for m in range(60):
                    if not _field_has(minute, m, 0, 59):
                        continue
                    for s in range(60):
                        candidate = datetime.combine(day, time(h, m, s))
                        if candidate > wall and _field_has(second, s, 0, 59):
                            assert matches(text, candidate)
                            return candidate
        day += timedelta(days=1)
    return None
