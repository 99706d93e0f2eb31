"""Retries on error: how many, and how long to wait before each (Celery's ``autoretry_for``
with ``retry_backoff``, ``retry_backoff_max`` and ``retry_jitter``; Kubernetes' Job
``backoffLimit``).

Pure: a :class:`RetryPolicy` is read from loose input (:func:`read_retry`: CLI text, API
JSON, the ``@process`` decorator's values) or from its stored document, and says the delay
before each retry; the runtime decides when a failed run is retried
(:mod:`bgproc.runtime.retrying`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bgproc.errors import InvalidInput
from bgproc.timing.inputs import field_label, parse_duration, parse_flag, parse_int

RETRY_KEYS = ("retries", "retry_backoff", "retry_max", "retry_jitter")
MAX_RETRIES = 100  # a run that failed this often will not succeed by waiting
DEFAULT_BACKOFF_S = 30
# Every delay is at most this: a retry waits in a worker's memory (its message's ETA),
# and a week is past any outage worth riding out.
MAX_DELAY = timedelta(days=7)

RandomBelow = Callable[[int], int]  # a whole number in [0, n): random.randrange's contract


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``retries`` more attempts after a run that ends ``error``: the first
    ``backoff_s`` after it, each next one twice as late, at most ``max_s``; with ``jitter``
    each wait is drawn at random between 0 and that (Celery's full jitter)."""

    retries: int
    backoff_s: int = DEFAULT_BACKOFF_S
    max_s: int | None = None
    jitter: bool = False

    @property
    def tries(self) -> int:
        """Attempts in all, the first included ("attempt 2 of 3")."""
        return self.retries + 1

    def delay_s(self, retry: int, below: RandomBelow = random.randrange) -> int:
        """Seconds to wait before retry number ``retry`` (1: the first retry), as Celery's
        ``get_exponential_backoff_interval`` counts them."""
        if retry < 1:
            raise ValueError(f"retry {retry}: retries are counted from 1")
        cap = int(min(self.max_s or MAX_DELAY.total_seconds(), MAX_DELAY.total_seconds()))
        # the exponent is bounded first: 2**100 is exact, but no cap needs more than 2**20
        delay = min(cap, self.backoff_s * 2 ** min(retry - 1, 40))
        return below(delay + 1) if self.jitter else delay

    def as_dict(self) -> dict[str, Any]:
        """The stored document (a request's ``retry`` column, and its JSON)."""
        return {
            "retries": self.retries,
            "backoff_s": self.backoff_s,
            "max_s": self.max_s,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RetryPolicy:
        """The policy of a stored document, checked as input is."""
        policy = read_retry(
            {
                "retries": document.get("retries"),
                "retry_backoff": document.get("backoff_s"),
                "retry_max": document.get("max_s"),
                "retry_jitter": document.get("jitter"),
            }
        )
        if policy is None:
            raise ValueError(f"retry document without retries: {dict(document)!r}")
        return policy

    def describe(self) -> str:
        """``2 retries, 30 s after an error, doubling, at most 1 h, with jitter``."""
        if not self.retries:
            return "no retries"
        words = [
            f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}",
            f"{_spoken_s(self.backoff_s)} after an error",
        ]
        if self.retries > 1:
            words.append("doubling")
            if self.max_s is not None:
                words.append(f"at most {_spoken_s(self.max_s)}")
        if self.jitter:
            words.append("with jitter")
        return ", ".join(words)


def _spoken_s(seconds: int) -> str:
    """``45 s``, ``2 min``, ``3 h``, ``7 d``: a whole unit where there is one."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def read_retry(fields: Mapping[str, object]) -> RetryPolicy | None:
    """The policy given by ``fields`` (keys :data:`RETRY_KEYS`; None values are not given),
    None when none is; each refusal names its field. ``retries`` 0 is a policy too: no
    retries, whatever the process's default."""
    given = {key: fields[key] for key in RETRY_KEYS if fields.get(key) is not None}
    if not given:
        return None
    if "retries" not in given:
        raise InvalidInput(field_label(sorted(given)[0]), "needs --retries N")
    retries = parse_int(given["retries"], "retries", 0, MAX_RETRIES)
    backoff_s = _seconds(given.get("retry_backoff", DEFAULT_BACKOFF_S), "retry-backoff")
    max_s = _seconds(given["retry_max"], "retry-max") if "retry_max" in given else None
    if max_s is not None and max_s < backoff_s:
        raise InvalidInput("retry-max", f"is shorter than --retry-backoff ({backoff_s} s)")
    jitter = parse_flag(given.get("retry_jitter", False), "retry-jitter")
    return RetryPolicy(retries, backoff_s, max_s, jitter)


def _seconds(value: object, field: str) -> int:
    """A duration (``30s``, ``5m``, ``1h``; a whole number is seconds) in whole seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}s"
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = f"{value.strip()}s"
    elif not isinstance(value, str):
        raise InvalidInput(field, f"{value!r} is not a duration (use e.g. 30s, 5m or 1h)")
    return int(parse_duration(value, field, MAX_DELAY).total_seconds())
