"""A request as callers see it (:class:`RequestView`), made from its SQL row in one place.

Apart from :mod:`bgproc.services.requests` because readers need only this: the JSON
documents, the CLI and the web render a view, and sync reads a row's timing, without the
rules that keep a request's row and its RedBeat entry in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bgproc.errors import NotFound
from bgproc.registry import Registry
from bgproc.statuses import RequestStatus, group_label
from bgproc.store.models import ProcessCalendar, ProcessRequest
from bgproc.timing.alerts import AlertTargets
from bgproc.timing.calendars import Calendar, CalendarPlan, OnExcluded
from bgproc.timing.deadlines import Deadlines
from bgproc.timing.plan import Misfire, Timing
from bgproc.timing.retry import RetryPolicy


@dataclass(frozen=True)
class RequestView:
    """A request as callers see it: typed timing, secrets masked.

    It runs ``process`` with ``params``, or the group ``group`` (id ``group_id``),
    whose steps carry their own parameters (``GroupService.get(group_id)``).
    """

    id: int
    name: str | None
    process: str | None
    group: str | None
    group_id: int | None
    params: dict[str, Any]
    timing: Timing
    status: RequestStatus
    prevent_concurrent: bool
    misfire: Misfire
    created_at: datetime
    updated_at: datetime
    retry: RetryPolicy | None = None  # the policy its runs follow: its own, or its process's
    retry_is_own: bool = False  # set on the request (else the process's default, if any)
    catch_up_max: int | None = None  # with misfire catch-up: how many missed fires run at most
    replace_running: bool = False  # a fire kills the run still going instead of skipping
    # in force: its own, each one it does not set its process's
    deadlines: Deadlines = field(default_factory=Deadlines)
    own_deadlines: Deadlines | None = None  # set on the request (None: the process's)

    @property
    def deadlines_document(self) -> dict[str, Any]:
        """``"deadlines"`` in JSON: those in force (seconds; null: none), in words, and
        what the request itself sets (``"own"``; null: all its process's defaults)."""
        force = self.deadlines
        return {
            "start_deadline_s": force.start_deadline_s,
            "max_runtime_s": force.runtime_limit_s,
            "kill_overdue": force.kills,
            "description": force.describe(),
            "own": self.own_deadlines.as_dict() if self.own_deadlines is not None else None,
        }
    alerts: AlertTargets | None = None  # its own alert targets (None: the defaults)
    calendars: tuple[Calendar, ...] = ()  # whose exclusions its fires follow
    on_excluded: OnExcluded = OnExcluded.SKIP

    @property
    def plan(self) -> CalendarPlan:
        """Its timing with its calendars: the fires that happen."""
        return CalendarPlan(self.timing, self.calendars, self.on_excluded)

    @property
    def retry_document(self) -> dict[str, Any] | None:
        """``"retry"`` in JSON: the policy, where it comes from, and in words."""
        if self.retry is None:
            return None
        return {
            **self.retry.as_dict(),
            "from": "request" if self.retry_is_own else "process",
            "description": self.retry.describe(),
        }

    @property
    def label(self) -> str:
        """What runs, in one word: the process name, or ``group:NAME``."""
        return self.process if self.process is not None else group_label(self.group or "")

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``request show --json`` (without next runs)."""
        return {
            "id": self.id,
            "name": self.name,
            "process": self.process,
            "group": self.group,
            "params": self.params,
            "status": self.status.value,
            "timing": self.timing.as_dict(),
            "description": self.plan.describe(),
            "prevent_concurrent": self.prevent_concurrent,
            "replace_running": self.replace_running,
            "misfire": self.misfire.value,
            "catch_up_max": self.catch_up_max,
            "calendars": [calendar.name for calendar in self.calendars],
            "on_excluded": self.on_excluded.value,
            "retry": self.retry_document,
            "deadlines": self.deadlines_document,
            "alerts": self.alerts.as_dict() if self.alerts is not None else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# -- row -> value ---------------------------------------------------------------


def timing_of(row: ProcessRequest) -> Timing:
    """The row's timing value, read from its stored document."""
    return Timing.from_dict(row.timing)


def calendars_of(row: ProcessRequest) -> tuple[Calendar, ...]:
    """The calendars the row follows, as values (what its entry carries)."""
    return tuple(calendar_value(c) for c in row.calendars)


def calendar_value(row: ProcessCalendar) -> Calendar:
    """A calendar row's value."""
    return Calendar.build(row.name, row.tz, row.dates, row.yearly, row.windows)


def view_of(row: ProcessRequest, registry: Registry, *, reveal: bool = False) -> RequestView:
    """The row as callers see it: secret parameters masked unless ``reveal`` (the runner's)."""
    default: RetryPolicy | None = None
    default_deadlines: Deadlines | None = None
    try:
        spec = registry.get(row.process or "")
        masked = dict(row.params) if reveal else spec.masked(row.params)
        default, default_deadlines = spec.retry, spec.deadlines
    except NotFound:
        masked = dict(row.params)
    own = RetryPolicy.from_dict(row.retry) if row.retry is not None else None
    own_deadlines = Deadlines.from_dict(row.deadlines) if row.deadlines is not None else None
    deadlines = (own_deadlines or Deadlines()).over(default_deadlines)
    return RequestView(
        id=row.id,
        name=row.name,
        process=row.process,
        group=row.group.name if row.group is not None else None,
        group_id=row.group.id if row.group is not None else None,
        params=masked,
        timing=timing_of(row),
        status=RequestStatus(row.status),
        prevent_concurrent=row.prevent_concurrent,
        misfire=Misfire(row.misfire),
        created_at=row.created_at,
        updated_at=row.updated_at,
        retry=own or default,
        retry_is_own=own is not None,
        catch_up_max=row.catch_up_max,
        replace_running=row.replace_running,
        deadlines=deadlines,
        own_deadlines=own_deadlines,
        alerts=None if row.alerts is None else AlertTargets.from_dict(row.alerts),
        calendars=calendars_of(row),
        on_excluded=OnExcluded(row.on_excluded),
    )
