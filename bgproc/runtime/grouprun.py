"""Group runs: a group fire is one parent run whose steps run one after another (design §4).

The parent is ``processing`` from its start until its last step has ended. Each step is
a run of its own (``group_run_id`` names the parent), published as its own message, so
any worker may run it. Whoever sees a step end — the worker that ran it, the worker's
main process after a hard time limit or a lost child, the sweep after a lost worker —
calls :meth:`GroupRuns.advance`, which is idempotent under a row lock: it starts the next
step, or closes the parent. The sweep also advances every ``processing`` parent that has
no open step, so a crash between one step's end and the next step's start delays the
group by one sweep and never strands it.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, object_session

from bgproc.errors import NotFound
from bgproc.registry import Registry
from bgproc.settings import RUN_ID_HEADER, RUN_TASK
from bgproc.statuses import GROUP_LABEL_PREFIX, RunStatus
from bgproc.store.alerts import ALERTING, record_events
from bgproc.store.db import read_session, session_scope
from bgproc.store.models import ProcessGroup, ProcessRequest, ProcessRun
from bgproc.store.transitions import NewRun

logger = logging.getLogger("bgproc.grouprun")
OPEN = (RunStatus.queued, RunStatus.processing)
SUCCEEDED = RunStatus.success  # any other end of a step counts as a failure


@dataclass(frozen=True)
class StepToSend:
    """A step's run, committed as queued, whose message is still to be published."""

    run_id: int
    task_id: str
    process: str


def _stamp(now: datetime) -> str:
    return now.isoformat(timespec="milliseconds")


def _log(parent: ProcessRun, now: datetime, line: str) -> None:
    parent.log = (parent.log or "") + f"{_stamp(now)} GROUP {line}\n"


class GroupRuns:
    """Starts and advances group runs; SQL under a row lock, then the step's message."""

    def __init__(self, engine: Engine, registry: Registry, app: Celery) -> None:
        self.engine = engine
        self.registry = registry
        self.app = app

    def start(self, run_id: int, now: datetime, worker: str, attempt: int) -> None:
        """The parent's message arrived: it starts (or is skipped), then its first step."""
        with session_scope(self.engine) as session:
            parent = _locked(session, run_id)
            if parent is None or parent.status not in OPEN:
                return  # gone, or a duplicate delivery of a parent already going or ended
            group = self._group_of(session, parent)
            if group is None:
                _close(parent, RunStatus.error, now, "error: the request's group is gone")
                return
            if parent.status is RunStatus.processing:
                return  # a redelivery: the steps go on; advance() repairs if they stopped
            if _concurrent(session, group, parent):
                _close(parent, RunStatus.skipped, now,
                       f"skipped: a run of group {group.name} is still going "
                       "(prevent concurrent executions)")  # fmt: skip
                return
            parent.status, parent.started_at = RunStatus.processing, now
            parent.worker, parent.attempt = worker, attempt
            _log(parent, now, f"{group.name}: {len(group.steps)} steps")
        self.advance(run_id, now)

    def advance(self, parent_id: int, now: datetime) -> None:
        """Start the parent's next step, or close it; does nothing while a step is open."""
        while (step := self._next(parent_id, now)) is not None:
            if self._send(step):
                return
            with session_scope(self.engine) as session:  # not sent: that step failed
                row = session.get(ProcessRun, step.run_id)
                if row is not None and row.status in OPEN:
                    _close(row, RunStatus.error, now, "error: could not be sent to the broker")

    def after_step(self, run_id: int, now: datetime) -> None:
        """A run ended outside its worker's own hands (sweep, main process): advance its group."""
        with read_session(self.engine) as session:
            parent_id = session.scalar(
                select(ProcessRun.group_run_id).where(ProcessRun.id == run_id)
            )
        if parent_id is not None:
            self.advance(parent_id, now)

    def repair(self, now: datetime) -> list[int]:
        """Advance every processing parent with no open step (the sweep calls this). Found
        by a read (no SQLite write lock every round, in every worker): :meth:`advance`
        checks again under the parent's lock."""
        run = ProcessRun
        with read_session(self.engine) as session:
            parents = session.scalars(
                select(run.id).where(
                    run.status == RunStatus.processing,
                    run.group_run_id.is_(None),
                    run.process.startswith(GROUP_LABEL_PREFIX, autoescape=True),
                )
            ).all()
            stalled = [
                parent_id
                for parent_id in parents
                if session.scalar(
                    select(run.id).where(run.group_run_id == parent_id, run.status.in_(OPEN))
                    .limit(1)
                ) is None
            ]  # fmt: skip
        for parent_id in stalled:
            self.advance(parent_id, now)
        return stalled

    # -- internals ---------------------------------------------------------------------

    def _next(self, parent_id: int, now: datetime) -> StepToSend | None:
        """Under the parent's lock: the next step's run, committed as queued (None: done)."""
        with session_scope(self.engine) as session:
            parent = _locked(session, parent_id)
            if parent is None or parent.status is not RunStatus.processing:
                return None
            steps = session.scalars(
                select(ProcessRun).where(ProcessRun.group_run_id == parent_id)
                .order_by(ProcessRun.id)
            ).all()  # fmt: skip
            if any(step.status in OPEN for step in steps):
                return None
            group = self._group_of(session, parent)
            if group is None:
                _close(parent, RunStatus.error, now, "error: the request's group is gone")
                return None
            total = len(group.steps)
            if steps:
                last = steps[-1]
                outcome = last.status.value + (f" ({last.error})" if last.error else "")
                where = f"step {len(steps)}/{total} {last.process}: run {last.id}"
                _log(parent, now, f"{where} {outcome}")
            failed = [s for s in steps if s.status is not SUCCEEDED]
            if len(steps) >= total or (failed and group.stop_on_error):
                _finish(parent, now, failed, total, len(steps))
                return None
            step = group.steps[len(steps)]
            task_id = str(uuid.uuid4())
            row = NewRun(
                process=step.process,
                params=dict(step.params or {}),
                status=RunStatus.queued,
                channel=parent.channel,
                request_id=parent.request_id,
                group_run_id=parent.id,
                scheduled_at=now,
                queued_at=now,
                task_id=task_id,
            ).row()
            session.add(row)
            session.flush()
            _log(parent, now, f"step {len(steps) + 1}/{total} {step.process}: run {row.id} starts")
            return StepToSend(row.id, task_id, step.process)

    def _send(self, step: StepToSend) -> bool:
        """Publish the step's message; False if it could not be (logged)."""
        options: dict[str, Any] = {}  # unregistered: sent anyway, the runner refuses it
        with suppress(NotFound):
            options = self.registry.get(step.process).send_options()
        try:
            self.app.send_task(
                RUN_TASK, task_id=step.task_id, shadow=step.process,
                headers={RUN_ID_HEADER: step.run_id}, retry=False, **options,
            )  # fmt: skip
        except Exception:
            logger.exception("group step run %s could not be sent", step.run_id)
            return False
        return True

    @staticmethod
    def _group_of(session: Session, parent: ProcessRun) -> ProcessGroup | None:
        request = session.get(ProcessRequest, parent.request_id) if parent.request_id else None
        return request.group if request is not None else None


def _locked(session: Session, run_id: int) -> ProcessRun | None:
    """The run, locked for this transaction (PostgreSQL; SQLite writes one at a time)."""
    return session.scalar(select(ProcessRun).where(ProcessRun.id == run_id).with_for_update())


def _concurrent(session: Session, group: ProcessGroup, parent: ProcessRun) -> bool:
    """Whether prevent-concurrent holds this fire back: another run of the group is going."""
    request = session.get(ProcessRequest, parent.request_id)
    if not (group.prevent_concurrent or (request is not None and request.prevent_concurrent)):
        return False
    # Serialise the check across workers and machines on the group's row.
    session.scalar(select(ProcessGroup.id).where(ProcessGroup.id == group.id).with_for_update())
    going = session.scalar(
        select(ProcessRun.id).where(
            ProcessRun.process == parent.process,
            ProcessRun.group_run_id.is_(None),
            ProcessRun.status == RunStatus.processing,
            ProcessRun.id != parent.id,
        ).limit(1)
    )  # fmt: skip
    return going is not None


def _close(run: ProcessRun, status: RunStatus, now: datetime, why: str | None) -> None:
    """End ``run`` in its session, with its alert event in the same transaction."""
    run.status, run.ended_at, run.error = status, now, why
    if run.started_at is not None:
        run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    if status in ALERTING and (session := object_session(run)) is not None:
        session.flush()
        record_events(session.connection(), [run.id])


def _finish(parent: ProcessRun, now: datetime, failed: list[ProcessRun], total: int,
            ran: int) -> None:  # fmt: skip
    if not failed:
        _close(parent, RunStatus.success, now, None)
        _log(parent, now, f"success: {ran} of {total} steps succeeded")
        return
    first = failed[0]
    why = f"error: step run {first.id} ({first.process}) ended {first.status.value}"
    if ran < total:
        why += f"; stop on error: {total - ran} step(s) not started"
    _close(parent, RunStatus.error, now, why)
    # The log told each step's end as it came: its last line counts them, naming none again.
    stopped = f"; stop on error: {total - ran} not started" if ran < total else ""
    _log(parent, now, f"error: {len(failed)} of {total} steps failed{stopped}")
