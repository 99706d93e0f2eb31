"""The JSON documents bgproc hands out: one builder each, for ``--json`` and ``/api/v1`` alike.

A front end calls the services, then one of these: the CLI prints the document, the web
serves it, so the two cannot drift apart. Values in (already masked), JSON-able dicts out;
instants as ISO 8601 text with their offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bgproc.statuses import GROUP_LABEL_PREFIX, RunStatus

if TYPE_CHECKING:
    from bgproc.progress import Progress
    from bgproc.registry import ProcessSpec
    from bgproc.services.control import BeatInfo, QueueDepth, Whereabouts, WorkerInfo
    from bgproc.services.health import Check
    from bgproc.services.kills import KillOutcome
    from bgproc.services.requestview import RequestView
    from bgproc.store.runs import LogChunk
    from bgproc.store.runview import RunView
    from bgproc.timing.calendars import CalendarPlan


def process_document(spec: ProcessSpec) -> dict[str, Any]:
    """One item of ``bgproc processes --json``."""
    return {
        "name": spec.name,
        "description": spec.description,
        "params": [
            {
                "name": p.name,
                "type": p.type_name,
                "required": p.required,
                "default": p.default,
                "secret": p.secret,
            }
            for p in spec.params
        ],
        "accepts_any_params": spec.accepts_any,
        "prevent_concurrent": spec.prevent_concurrent,
        "retry": spec.retry.as_dict() if spec.retry is not None else None,
        "deadlines": spec.deadlines.as_dict() if spec.deadlines is not None else None,
        "killable": spec.killable,
        "queue": spec.queue,
        "time_limit_s": spec.time_limit_s,
    }


def request_document(view: RequestView, next_runs: Sequence[datetime]) -> dict[str, Any]:
    """``request show|create|update --json``: the request, and its next fires in its zone."""
    zone = view.timing.zone
    return {**view.as_json(), "next_runs": [f.astimezone(zone).isoformat() for f in next_runs]}


def preview_document(plan: CalendarPlan, fires: Sequence[datetime]) -> dict[str, Any]:
    """``preview --json``: the timing in words and as stored, its calendars, and its next
    fires (those the calendars leave or move)."""
    timing = plan.timing
    return {
        "description": plan.describe(),
        "timezone": timing.timezone,
        "timing": timing.as_dict(),
        "calendars": [calendar.name for calendar in plan.calendars],
        "on_excluded": plan.on_excluded.value,
        "next_runs": [f.astimezone(timing.zone).isoformat() for f in fires],
    }


def run_document(
    view: RunView, steps: Sequence[RunView], whereabouts: Whereabouts | None
) -> dict[str, Any]:
    """``monitor show --json``: every field; where a queued run's message is; a group's steps."""
    data = view.as_json()
    if whereabouts is not None:
        data["message"] = {
            "place": whereabouts.place,
            "name": whereabouts.name,
            "description": whereabouts.describe(),
        }
    if steps or view.process.startswith(GROUP_LABEL_PREFIX):
        data["steps"] = [step.as_json(full=False) for step in steps]
    return data


def log_document(chunk: LogChunk) -> dict[str, Any]:
    """What a run's log grew by since an offset (the API's ``monitor log``)."""
    return {
        "text": chunk.text,
        "end": chunk.end,
        "finished": chunk.finished,
        "restarted": chunk.restarted,
    }


def progress_document(progress: Progress) -> dict[str, Any]:
    """A run's progress as the run's page shows it live: the figures and the sentence."""
    return {**progress.as_json(), "text": progress_text(progress)}


def kill_document(outcome: KillOutcome) -> dict[str, Any]:
    """How a kill ended: the run as it stands, and whether it is killed or still running."""
    return {
        "run": outcome.run.as_json(full=False),
        "killed": outcome.killed,
        "still_running": outcome.still_running,
        "group": outcome.group,
    }


def workers_document(workers: Sequence[WorkerInfo], running: Sequence[RunView]) -> list[Any]:
    """``monitor workers --json``: each live worker and the ids of the runs it runs now."""
    return [
        {**worker.as_json(), "running": [run.id for run in running if run.worker == worker.name]}
        for worker in workers
    ]


def queues_document(depths: Sequence[QueueDepth], unacked: int) -> dict[str, Any]:
    """``monitor queues --json``."""
    return {"queues": [d.as_json() for d in depths], "unacked": unacked}


def beats_document(beats: Sequence[BeatInfo], now: datetime) -> list[Any]:
    """``monitor beats --json``."""
    return [beat.as_json(now) for beat in beats]


def health_document(checks: Sequence[Check]) -> dict[str, Any]:
    """``health --json``: healthy only when every check is."""
    return {"healthy": all(c.ok for c in checks), "checks": [c.as_json() for c in checks]}


def progress_text(progress: Progress) -> str:
    """``40 / 100 (40.0 %), 2.5/s, about 24.0 s left: loading invoices``: a run's progress
    as ``monitor show``, ``monitor watch`` and the run's page tell it."""
    text = f"{_number(progress.done)}"
    if progress.total is not None:
        text += f" / {_number(progress.total)}"
    if progress.percent is not None:
        text += f" ({progress.percent:.1f} %)"
    if progress.rate_per_s is not None:
        text += f", {progress.rate_per_s:.3g}/s"
    if progress.remaining_s is not None:
        text += f", about {human_duration(progress.remaining_s * 1000)} left"
    return f"{text}: {progress.message}" if progress.message else text


def _number(value: float) -> str:
    return f"{value:g}" if not float(value).is_integer() else str(int(value))
def retry_words(view: RunView, shown: Callable[[datetime], str]) -> str | None:
    """A run's place among its fire's attempts, as both front ends say it: ``attempt 1 of
    3, retrying at … (run 9)``; None for a run that no retry policy touched."""
    if view.max_tries is None:
        return None
    words = f"attempt {view.try_number} of {view.max_tries}"
    if view.first_run_id is not None:
        words += f" (a retry of run {view.first_run_id})"
    if view.status is RunStatus.queued and view.first_run_id is not None and view.scheduled_at:
        return f"{words}, due at {shown(view.scheduled_at)}"
    if view.retry_at is not None:
        return f"{words}, retrying at {shown(view.retry_at)} (run {view.retry_run_id})"
    if view.retry_run_id is not None:
        return f"{words}; its retry, run {view.retry_run_id}, was stopped"
    if view.status is RunStatus.error and view.try_number >= view.max_tries:
        return f"{words}: no retries left"
    return words


def overdue_words(view: RunView, shown: Callable[[datetime], str]) -> str | None:
    """``OVERDUE since …`` while an overdue run goes, ``was overdue from …`` after; None for
    a run that never went past a maximum runtime."""
    if view.overdue_at is None:
        return None
    if view.overdue:
        return f"OVERDUE since {shown(view.overdue_at)} (past its maximum runtime)"
    return f"was overdue from {shown(view.overdue_at)}"


def human_duration(ms: float | None) -> str:
    """``850 ms``, ``1.2 s``, ``4 min 12 s``, ``2 h 3 min``, ``3 d 4 h``: a duration as
    both front ends show one."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 59_950:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
