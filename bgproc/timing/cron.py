"""Cron expressions: Unix 5-field and Quartz 6/7-field, evaluated in naive wall-clock time.

Etendo users paste Quartz expressions and Unix users paste crontab lines, so both dialects are
parsed into one representation (sorted tuples of allowed seconds, minutes, hours, months and
years, plus a rule set for days) and evaluated here by one search that moves field by field
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

Searches are bounded by 401 years: the Gregorian calendar repeats every 400 years, so an
expression that finds nothing in that window never fires, and ``next_after`` returns None
(Quartz gives up at this year + 100 instead). The syntax of both dialects and its semantics
decisions are in :mod:`bgproc.timing.cronsyntax`; the words of ``describe`` in
:mod:`bgproc.timing.cronwords`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bgproc.timing import cronwords
from bgproc.timing.cronsyntax import MONTH_DAYS, Spec, bad, check_chars, clip, parse_spec

__all__ = ["CronExpression"]

_SEARCH_YEARS = 401


def _ceil(seq: tuple[int, ...], x: int) -> int | None:
    """Smallest element of sorted ``seq`` that is >= x, or None."""
    i = bisect_left(seq, x)
    return seq[i] if i < len(seq) else None


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression; ``parse`` is the way to build one."""

    text: str
    dialect: str
    _spec: Spec = field(init=False, repr=False, compare=False)
    # (ldom, weekday of the 1st) -> matching days; at most 28 keys, so it never grows further.
    _month_days: dict[tuple[int, int], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise bad("expression must be text")
        dialect, spec = parse_spec(self.text)
        if dialect != self.dialect:
            raise bad(f"{clip(self.text)!r} is a {dialect} expression, not {self.dialect}")
        object.__setattr__(self, "_spec", spec)

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Validate ``text``; raise InvalidInput("cron", reason) when it is no cron expression."""
        if not isinstance(text, str):
            raise bad("expression must be text")
        stripped = text.strip()
        check_chars(stripped)
        n = len(stripped.split())
        dialect = "unix" if n == 5 else "quartz" if n in (6, 7) else ""
        if not dialect:
            parse_spec(stripped)  # raises the precise reason (empty, field count)
        return cls(stripped, dialect)

    def _days(self, y: int, m: int) -> tuple[int, ...]:
        ldom = 29 if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else MONTH_DAYS[m]
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
                for ldom in ((28, 29) if m == 2 else (MONTH_DAYS[m],))
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
        return cronwords.describe(self.text, self.dialect)
