"""Killing a run: what may be killed, and how each kind of run ends (any front end's rules).

A run of a killable process is asked to stop through Redis (its worker looks every half
second); a queued one is closed at once, so no worker starts it. A retry waiting for its
backoff (or the failed run it retries) is stopped at once, whatever its process. A group run ends
``killed`` at once: no further step starts, and its open steps are asked to stop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bgproc.errors import Conflict
from bgproc.statuses import GROUP_LABEL_PREFIX, RunStatus

if TYPE_CHECKING:
    from bgproc.registry import Registry
    from bgproc.services.control import Control
    from bgproc.store.runs import RunStore
    from bgproc.store.runview import RunView

KILL_POLL_S = 0.2  # how often a kill that waits looks whether the run has stopped


@dataclass(frozen=True)
class KillOutcome:
    """The run as it stands once the kill took effect or the wait ran out."""

    run: RunView
    group: bool  # a group run: killed at once, its steps asked to stop

    @property
    def killed(self) -> bool:
        return self.run.status is RunStatus.killed

    @property
    def still_running(self) -> bool:
        return not self.run.finished


class Killer:
    """Kills runs: refuses what cannot be killed (:class:`Conflict`), asks the rest to stop."""

    def __init__(self, runs: RunStore, control: Control, registry: Registry) -> None:
        self.runs = runs
        self.control = control
        self.registry = registry

    def kill(self, run_id: int, wait_s: float) -> KillOutcome:
        """Kill ``run_id`` and wait up to ``wait_s`` for a running one to stop."""
        view = self.runs.get(run_id)
        now = datetime.now(UTC)
        waiting = self._waiting_retry(view)
        if waiting is not None:  # a retry not yet due, or the failed run it retries
            self.runs.stop_retry(waiting, RunStatus.killed, "killed before this retry was due", now)
            return KillOutcome(self.runs.get(waiting), group=False)
        if view.finished:
            raise Conflict(f"run {run_id} has already ended ({view.status.value})")
        if view.process.startswith(GROUP_LABEL_PREFIX):
            self._kill_group(view, now)
            return KillOutcome(self.runs.get(run_id), group=True)
        spec = self.registry.get(view.process)
        if not spec.killable:
            why = f"process {spec.name} is not killable (it cannot be stopped)"
            raise Conflict(f"run {run_id}: {why}")
        self.control.ask_kill(run_id)
        if view.status is RunStatus.queued:
            self.runs.close_open(run_id, "", RunStatus.killed, now, "killed before it started")
        deadline = time.monotonic() + wait_s
        while not (view := self.runs.get(run_id)).finished and time.monotonic() < deadline:
            time.sleep(KILL_POLL_S)
        return KillOutcome(view, group=False)

    def _waiting_retry(self, view: RunView) -> int | None:
        """The retry still waiting that killing ``view`` stops: ``view`` itself, or the
        retry of a failed run. A retry that never started is stopped whatever its process:
        nothing runs to be asked."""
        if view.status is RunStatus.queued and view.first_run_id is not None:
            return view.id
        if view.retry_at is not None and view.retry_run_id is not None:
            retry = self.runs.get(view.retry_run_id)
            if retry.status is RunStatus.queued:
                return retry.id
        return None

    def _kill_group(self, view: RunView, now: datetime) -> None:
        why = "killed on request: no further step starts"
        self.runs.close_open(view.id, "", RunStatus.killed, now, why)
        for step in self.runs.steps(view.id):
            if step.finished:
                continue
            self.control.ask_kill(step.id)
            if step.status is RunStatus.queued:
                self.runs.close_open(step.id, "", RunStatus.killed, now, "killed before it started")
