"""How far a long run has come: what ``ctx.progress(done, total, "message")`` reports.

A report replaces the previous one; the first report's time and count are kept with it, so
the rate (and from it the time left) is of the work measured, not of the set-up before it.
Everything is derived from what was stored, never from the clock of the reader: the CLI,
the pages and the API show the same figures for the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

MAX_MESSAGE_CHARS = 500  # a status line, not a log: the log is for the rest
MAX_REMAINING_S = 10 * 365 * 86400  # an estimate beyond ten years tells nothing


@dataclass(frozen=True)
class Progress:
    """The latest report of a run, with its first for the rate."""

    done: float
    total: float | None
    message: str
    at: datetime
    first_at: datetime
    first_done: float

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def rate_per_s(self) -> float | None:
        """Units done per second between the first report and the latest."""
        elapsed = (self.at - self.first_at).total_seconds()
        if elapsed <= 0 or self.done <= self.first_done:
            return None
        rate = (self.done - self.first_done) / elapsed
        return rate if rate > 0 else None  # too little done to measure

    @property
    def remaining_s(self) -> float | None:
        """Seconds left at the measured rate, from the latest report."""
        rate = self.rate_per_s
        if self.total is None or rate is None:
            return None
        remaining = max(0.0, (self.total - self.done) / rate)
        return remaining if remaining <= MAX_REMAINING_S else None  # too slow to tell

    def after(self, done: float, total: float | None, message: str, at: datetime) -> Progress:
        """The next report: the first one's time and count stay."""
        return replace(self, done=done, total=total, message=message, at=at)

    def as_json(self) -> dict[str, Any]:
        return {
            "done": _number(self.done),
            "total": None if self.total is None else _number(self.total),
            "message": self.message,
            "at": self.at.isoformat(),
            "first_at": self.first_at.isoformat(),
            "first_done": _number(self.first_done),
            "percent": None if self.percent is None else round(self.percent, 1),
            "rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 3),
            "remaining_s": None if self.remaining_s is None else round(self.remaining_s, 1),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            done=data["done"],
            total=data.get("total"),
            message=data.get("message", ""),
            at=datetime.fromisoformat(data["at"]),
            first_at=datetime.fromisoformat(data["first_at"]),
            first_done=data.get("first_done", 0),
        )


def first_report(done: float, total: float | None, message: str, at: datetime) -> Progress:
    return Progress(done, total, message, at, at, done)


def checked(done: Any, total: Any, message: Any) -> tuple[float, float | None, str]:
    """A report's values, or ``ValueError``/``TypeError`` naming what is wrong: a process
    calling ``ctx.progress`` wrongly hears it at once, in its own traceback."""
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"progress {name} must be a number, not {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"progress {name} must be a finite number >= 0, not {value!r}")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be text, not {type(message).__name__}")
    return done, total, message[:MAX_MESSAGE_CHARS]


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value

