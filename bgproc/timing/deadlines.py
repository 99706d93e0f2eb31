"""Deadlines of a run: by when it must start, and how long it may run (Kubernetes'
``startingDeadlineSeconds`` and ``activeDeadlineSeconds``; Quartz's misfire threshold,
per trigger).

Pure: :class:`Deadlines` is read from loose input (:func:`read_deadlines`: CLI text, API
JSON, the ``@process`` decorator's values) or from its stored document. Each field is
set or not on its own: a request's own value wins over its process's default, field by
field (:meth:`Deadlines.over`), and ``none`` sets "no deadline" whatever the process says.
The runtime enforces them (the beat's and the workers' expiry of late queued runs, the
worker's recorder for runs past their maximum runtime).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bgproc.errors import InvalidInput
from bgproc.timing.inputs import parse_duration, parse_flag

DEADLINE_KEYS = ("start_deadline", "max_runtime", "kill_overdue")
NO_DEADLINE = 0  # stored for ``none``: no deadline, whatever the process's default
NONE_WORDS = frozenset({"none", "0"})
MAX_DEADLINE = timedelta(days=366)  # past a year, a deadline is a typo


@dataclass(frozen=True)
class Deadlines:
    """``start_s``: a queued run not started this long after it was due ends ``expired``;
    ``max_runtime_s``: a run still going this long after it started is overdue, and with
    ``kill_overdue`` it is killed. None: not set here (the process's default applies);
    :data:`NO_DEADLINE`: set to none."""

    start_s: int | None = None
    max_runtime_s: int | None = None
    kill_overdue: bool | None = None

    @property
    def start_deadline_s(self) -> int | None:
        """The start deadline in force, in seconds (None: none)."""
        return self.start_s or None

    @property
    def runtime_limit_s(self) -> int | None:
        """The maximum runtime in force, in seconds (None: none)."""
        return self.max_runtime_s or None

    @property
    def kills(self) -> bool:
        """Whether an overdue run is killed."""
        return bool(self.kill_overdue) and self.runtime_limit_s is not None

    @property
    def empty(self) -> bool:
        return self.start_s is None and self.max_runtime_s is None and self.kill_overdue is None

    def over(self, default: Deadlines | None) -> Deadlines:
        """These deadlines, each field not set here taken from ``default``."""
        if default is None:
            return self
        return Deadlines(
            default.start_s if self.start_s is None else self.start_s,
            default.max_runtime_s if self.max_runtime_s is None else self.max_runtime_s,
            default.kill_overdue if self.kill_overdue is None else self.kill_overdue,
        )

    def as_dict(self) -> dict[str, Any]:
        """The stored document (a request's ``deadlines`` column, and its JSON)."""
        return {
            "start_deadline_s": self.start_s,
            "max_runtime_s": self.max_runtime_s,
            "kill_overdue": self.kill_overdue,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> Deadlines:
        """The deadlines of a stored document (None: none set)."""
        document = document or {}
        kill = document.get("kill_overdue")
        return cls(
            _stored_s(document.get("start_deadline_s")),
            _stored_s(document.get("max_runtime_s")),
            None if kill is None else bool(kill),
        )

    def describe(self) -> str:
        """``start within 5 min; overdue after 10 min, then killed`` (``none`` when neither)."""
        words = []
        if self.start_deadline_s is not None:
            words.append(f"start within {spoken_s(self.start_deadline_s)}")
        if self.runtime_limit_s is not None:
            words.append(f"overdue after {spoken_s(self.runtime_limit_s)}"
                         + (", then killed" if self.kills else ""))  # fmt: skip
        return "; ".join(words) or "none"


def start_by(due: datetime, deadline_s: int | None) -> datetime | None:
    """By when a run due at ``due`` must start (None: it has no start deadline). A retry
    counts from its own due time, so each attempt has the whole deadline."""
    return due + timedelta(seconds=deadline_s) if deadline_s is not None else None


def spoken_s(seconds: int) -> str:
    """``45 s``, ``2 min``, ``3 h``, ``7 d``: a whole unit where there is one."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _stored_s(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"deadline document holds {value!r}, not seconds")
    return value


def read_deadlines(fields: Mapping[str, object]) -> Deadlines | None:
    """The deadlines given by ``fields`` (keys :data:`DEADLINE_KEYS`; None values are not
    given), None when none is; each refusal names its field."""
    given = {key: fields[key] for key in DEADLINE_KEYS if fields.get(key) is not None}
    if not given:
        return None
    start = given.get("start_deadline")
    start_s = _seconds(start, "start-deadline") if start is not None else None
    runtime = given.get("max_runtime")
    runtime_s = _seconds(runtime, "max-runtime") if runtime is not None else None
    kill = parse_flag(given["kill_overdue"], "kill-overdue") if "kill_overdue" in given else None
    if kill and runtime_s == NO_DEADLINE:
        raise InvalidInput("kill-overdue", "needs a --max-runtime (it is none)")
    return Deadlines(start_s, runtime_s, kill)


def check_kill_overdue(deadlines: Deadlines, killable: bool, what: str) -> None:
    """Refuse ``--kill-overdue`` where it could not work: without a maximum runtime, or for a
    process that cannot be stopped (``what`` names it)."""
    if not deadlines.kill_overdue:
        return
    if deadlines.runtime_limit_s is None:
        raise InvalidInput("kill-overdue", "needs --max-runtime D")
    if not killable:
        raise InvalidInput("kill-overdue", f"{what} is not killable (it cannot be stopped)")


def _seconds(value: object, field: str) -> int:
    """A duration (``30s``, ``5m``, ``1h``; a whole number is seconds) in whole seconds, or
    :data:`NO_DEADLINE` for ``none``."""
    if isinstance(value, bool):
        raise InvalidInput(field, f"{value!r} is not a duration (use e.g. 30s, 5m or 1h, or none)")
    if isinstance(value, int):
        if value == 0:
            return NO_DEADLINE
        if value < 0:
            raise InvalidInput(field, f"must be longer than 0 (got {value})")
        value = f"{value}s"
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in NONE_WORDS:
            return NO_DEADLINE
        value = f"{text}s" if text.isascii() and text.isdigit() else text
    else:
        raise InvalidInput(field, f"{value!r} is not a duration (use e.g. 30s, 5m or 1h, or none)")
    return int(parse_duration(value, field, MAX_DEADLINE).total_seconds())
