"""The one Celery task: run a registered process, with its context, and record the run.

Messages carry ids only (a request id from beat, a run id from ``bgproc run``);
parameters are read from the database at run time, so secrets never sit in
Redis, and only processes in the registry can ever run.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task, shared_task

from bgproc.app import RUN_TASK
from bgproc.errors import NotFound
from bgproc.installation import Installation
from bgproc.leases import Lease
from bgproc.logcapture import LogCapture
from bgproc.models import Channel, RequestStatus, RunStatus
from bgproc.registry import ProcessContext, ProcessSpec

logger = logging.getLogger("bgproc.runner")
RUNNABLE_REQUEST = frozenset({RequestStatus.scheduled, RequestStatus.complete})


def installation_of(app: Celery) -> Installation:
    """The installation of this worker process, built once per app."""
    found: Installation | None = getattr(app, "bgproc_installation", None)
    if found is None:
        found = Installation(app.conf.bgproc_settings)
        app.bgproc_installation = found  # type: ignore[attr-defined]
    return found


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Fire:
    """What one message asks for, read from its headers."""

    task_id: str
    request_id: int | None
    run_id: int | None
    scheduled_at: datetime | None
    worker: str
    attempt: int

    @classmethod
    def of(cls, task: Task) -> Fire:
        request = task.request

        def header(name: str) -> Any:
            return getattr(request, name, None) or (request.headers or {}).get(name)

        scheduled = header("bgproc_scheduled_at")
        return cls(
            task_id=str(request.id),
            request_id=_int(header("bgproc_request_id")),
            run_id=_int(header("bgproc_run_id")),
            scheduled_at=datetime.fromisoformat(scheduled) if scheduled else None,
            worker=str(request.hostname or ""),
            attempt=2 if request.delivery_info and request.delivery_info.get("redelivered") else 1,
        )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@shared_task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_process(task: Task, **_ignored: Any) -> None:
    """Celery's entry point; everything else happens in :class:`Runner`."""
    Runner(installation_of(task.app), Fire.of(task)).run()


class Runner:
    """Runs one fire: checks, lease, the process itself, and the run record."""

    def __init__(self, installation: Installation, fire: Fire) -> None:
        self.installation = installation
        self.fire = fire
        self.runs = installation.runs

    def run(self) -> None:
        plan = self._plan()
        if plan is None:
            return
        spec, params, lease_key, base = plan
        lease = Lease(self.installation.redis, lease_key) if lease_key else None
        if lease is not None and not lease.acquire():
            self.runs.settle(
                self.fire.task_id,
                RunStatus.skipped,
                utc_now(),
                **base,
                error="skipped: a run of this process is still going "
                "(prevent concurrent executions)",
            )
            return
        try:
            self._execute(spec, params, base)
        finally:
            if lease is not None:
                lease.release()

    def _plan(self) -> tuple[ProcessSpec, dict[str, Any], str | None, dict[str, Any]] | None:
        """What to run, or None when the fire must not run (recorded as such)."""
        fire = self.fire
        registry = self.installation.registry
        base: dict[str, Any] = {
            "worker": fire.worker,
            "attempt": fire.attempt,
            "scheduled_at": fire.scheduled_at,
            "request_id": fire.request_id,
        }
        lease_key: str | None = None
        if fire.request_id is not None:
            try:
                request = self.installation.requests.get(fire.request_id, reveal=True)
            except NotFound:
                logger.warning("fire of deleted request %s dropped", fire.request_id)
                return None
            base.update(
                process=request.process,
                params=request.params,
                channel=Channel.scheduler,
                request_id=request.id,
            )
            if request.status not in RUNNABLE_REQUEST:
                self.runs.settle(
                    fire.task_id,
                    RunStatus.skipped,
                    utc_now(),
                    **base,
                    error=f"skipped: request {request.id} is {request.status.value}",
                )
                return None
            if request.prevent_concurrent:
                lease_key = self.installation.settings.key("lease", "request", str(request.id))
        elif fire.run_id is not None:
            queued = self.runs.get(fire.run_id)
            base.update(process=queued.process, params=queued.params, channel=Channel.direct,
                        scheduled_at=queued.scheduled_at)
        else:
            logger.error("message %s names no request and no run: refused", fire.task_id)
            return None
        try:
            spec = registry.get(base["process"])
        except NotFound:
            self.runs.settle(
                fire.task_id,
                RunStatus.error,
                utc_now(),
                **base,
                error=f"{base['process']} is not a registered process: refused",
            )
            return None
        if spec.prevent_concurrent:
            lease_key = self.installation.settings.key("lease", "process", spec.name)
        return spec, base["params"], lease_key, base

    def _execute(self, spec: ProcessSpec, params: dict[str, Any], base: dict[str, Any]) -> None:
        run_id = self.runs.start(self.fire.task_id, utc_now(), **base)
        log = logging.getLogger(f"bgproc.process.{spec.name}")
        context = ProcessContext(log=log, run_id=run_id, request_id=self.fire.request_id)
        result: Any = None
        failure: dict[str, str] | None = None
        # The capture ends (its last flush done) before the run is closed: a finished
        # run's log is complete.
        with LogCapture(run_id, self.runs.append_log, context_logger=log):
            try:
                result = spec.func(context, **spec.call_kwargs(params))
            except Exception as error:
                failure = {
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(),
                }
                logger.error("run failed: %s", failure["error"])
        if failure is not None:
            self.runs.finish(run_id, RunStatus.error, utc_now(), **failure)
            return
        self.runs.finish(run_id, RunStatus.success, utc_now(), result=result)
