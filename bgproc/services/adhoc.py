"""Runs started by hand: ``bgproc run`` (a process, outside any request), ``monitor rerun``
(a run again) and ``request run`` (a request once now, its plan left alone).

The run row is written first (queued, with its parameters), then the message
carrying its id (and, for ``bgproc run``, its ticket: :func:`message_headers`); if the
publish fails the row is removed, so nothing is left half-done.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from bgproc.errors import Conflict, InvalidInput, NotFound, Unavailable
from bgproc.registry import SECRET_MASK, ProcessSpec, Registry
from bgproc.services.groups import GROUP_QUEUE
from bgproc.services.requests import RequestService
from bgproc.settings import RUN_ID_HEADER, RUN_TASK, TICKET_HEADER
from bgproc.statuses import GROUP_LABEL_PREFIX, Channel, RunStatus
from bgproc.store.runs import RunStore
from bgproc.store.tickets import ad_hoc_ticket
from bgproc.store.transitions import NewRun
from bgproc.timing.deadlines import start_by


def launch(
    registry: Registry, runs: RunStore, app: Celery, process: str, params: Mapping[str, object]
) -> int:
    """Queue one run of ``process`` now; its run id."""
    try:
        spec = registry.get(process)
    except NotFound:
        raise InvalidInput("process", f"{process!r} is not a registered process") from None
    stored = spec.validate_params(params)
    task_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    deadline_s = spec.deadlines.start_deadline_s if spec.deadlines is not None else None
    run_id = runs.record(
        NewRun(
            process=spec.name,
            params=stored,
            status=RunStatus.queued,
            channel=Channel.direct,
            scheduled_at=now,
            queued_at=now,
            task_id=task_id,
            start_by=start_by(now, deadline_s),
        )
    )
    headers = message_headers(spec, run_id, stored, runs.ticket_key)
    _send(runs, app, run_id, task_id, spec.name, headers, spec.send_options())
    return run_id


def message_headers(
    spec: ProcessSpec, run_id: int, params: dict[str, Any], key: str | None
) -> dict[str, Any]:
    """The headers of an ad-hoc run's message: its run id and, unless a parameter of its
    process is secret (a secret never sits in Redis), its ticket signed with the
    installation's ``key``, so that the worker starts it without reading it first (see
    :class:`bgproc.runtime.runner.Runner`). A run with a start deadline carries none: its
    worker reads its ``start_by`` and claims its start in time."""
    headers: dict[str, Any] = {RUN_ID_HEADER: run_id}
    in_time = spec.deadlines is not None and spec.deadlines.start_deadline_s is not None
    if key is not None and not spec.secret_params and not in_time:
        headers[TICKET_HEADER] = ad_hoc_ticket(key, run_id, spec.name, params)
    return headers


def rerun(registry: Registry, runs: RunStore, app: Celery, run_id: int) -> int:
    """A new ad-hoc run of run ``run_id``'s process with its parameters, secrets included:
    a run's row keeps what it ran with (every output masks them). A misfired run's row holds
    the masked copy beat recorded, so one with a secret parameter is refused, naming it."""
    view = runs.get(run_id)
    if view.process.startswith(GROUP_LABEL_PREFIX):
        hint = f" (`bgproc request run {view.request_id}` fires its request)"
        raise Conflict(f"run {run_id} is a group run: only a process's run is run again"
                       + (hint if view.request_id else ""))  # fmt: skip
    try:
        spec = registry.get(view.process)
    except NotFound:
        raise Conflict(f"run {run_id}: {view.process!r} is not a registered process") from None
    lost = sorted(name for name in spec.secret_params if view.params.get(name) == SECRET_MASK)
    if lost:
        raise Conflict(
            f"run {run_id}: its secret parameter {lost[0]} was not recorded ({view.status.value} "
            f"runs keep {SECRET_MASK}); start one with: bgproc run {spec.name} --param {lost[0]}=…"
        )
    return launch(registry, runs, app, spec.name, view.params)


def run_request(
    requests: RequestService, registry: Registry, runs: RunStore, app: Celery, request_id: int
) -> int:
    """Run request ``request_id`` once now, whatever its status, its plan left alone: a
    ``direct`` run of the request, which beat and sync do not count as a fire (its entry,
    next fire and status stay as they were). Its worker reads it from the database, so the
    request's rules hold (prevent-concurrent; a group's steps)."""
    view = requests.get(request_id, reveal=True)
    if view.process is None:
        options: dict[str, Any] = {"queue": GROUP_QUEUE}
    else:
        try:
            options = registry.get(view.process).send_options()
        except NotFound:
            why = f"{view.process!r} is not a registered process"
            raise Conflict(f"request {request_id}: {why}") from None
    task_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    run_id = runs.record(
        NewRun(
            request_id=view.id,
            process=view.label,
            params=view.params,
            status=RunStatus.queued,
            channel=Channel.direct,
            scheduled_at=now,
            queued_at=now,
            task_id=task_id,
            start_by=start_by(now, view.deadlines.start_deadline_s),
        )
    )
    _send(runs, app, run_id, task_id, view.label, {RUN_ID_HEADER: run_id}, options)
    return run_id


def _send(
    runs: RunStore,
    app: Celery,
    run_id: int,
    task_id: str,
    shown: str,
    headers: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """Publish the run's message; if that fails, forget the run (it was never sent)."""
    try:
        app.send_task(
            RUN_TASK,
            task_id=task_id,
            shadow=shown,  # the name Celery's tools show (see bgproc.runtime.runner)
            headers=headers,
            retry=False,
            **options,
        )
    except (OperationalError, RedisError, OSError) as error:
        runs.forget(run_id)
        raise Unavailable.of_redis(error) from None
