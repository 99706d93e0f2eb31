"""What one message asks the runner for, read from its headers: a :class:`Fire`.

Apart from :mod:`bgproc.runtime.runner` because it is the message's side of a run: the
header names beat and ``bgproc run`` write, read in one place, and the one question a
delivery asks before it may start (could another copy of it start too?).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Task

from bgproc.runtime.redelivery import SAFE_UNTIL, may_be_given_back
from bgproc.settings import RUN_ID_HEADER, TICKET_HEADER


@dataclass(frozen=True)
class Fire:
    """What one message asks for, read from its headers."""

    task_id: str
    request_id: int | None
    run_id: int | None
    scheduled_at: datetime | None
    worker: str
    redelivered: bool
    carried: Any = None  # an ad-hoc run's ticket, as its message carries it
    safe_until: float | None = None  # its worker's word: no twin of it can exist before

    def may_have_a_twin(self) -> bool:
        """Whether another copy of this message may start too: this one was given back
        (by kombu or by :mod:`bgproc.runtime.redelivery`), or its worker was silent for long enough
        that it may have been given back from under it."""
        return self.redelivered or may_be_given_back(self.safe_until, time.time())

    @classmethod
    def of(cls, task: Task) -> Fire:
        request = task.request

        def header(name: str) -> Any:
            return getattr(request, name, None) or (request.headers or {}).get(name)

        scheduled = header("bgproc_scheduled_at")
        run_id = int_or_none(header(RUN_ID_HEADER))
        return cls(
            task_id=str(request.id),
            request_id=int_or_none(header("bgproc_request_id")),
            run_id=run_id,
            scheduled_at=datetime.fromisoformat(scheduled) if scheduled else None,
            worker=str(request.hostname or ""),
            redelivered=bool(request.delivery_info and request.delivery_info.get("redelivered")),
            carried=header(TICKET_HEADER),
            safe_until=float_or_none(getattr(request, SAFE_UNTIL, None)),
        )


def int_or_none(value: Any) -> int | None:
    """A header's integer; a missing or garbled one is none (the message is refused later)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
