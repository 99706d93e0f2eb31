"""Ad-hoc runs (``bgproc run``): one immediate run of a process, outside any request.

The run row is written first (queued, with its parameters), then the message
carrying its id and ticket (:func:`message_headers`); if the publish fails the row
is removed, so nothing is left half-done.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from bgproc.errors import InvalidInput, NotFound, Unavailable
from bgproc.registry import ProcessSpec, Registry
from bgproc.settings import RUN_ID_HEADER, RUN_TASK, TICKET_HEADER
from bgproc.statuses import Channel, RunStatus
from bgproc.store.runs import RunStore
from bgproc.store.tickets import ad_hoc_ticket
from bgproc.store.transitions import NewRun


def launch(
    registry: Registry, runs: RunStore, app: Celery, process: str, params: Mapping[str, str]
) -> int:
    """Queue one run of ``process`` now; its run id."""
    try:
        spec = registry.get(process)
    except NotFound:
        raise InvalidInput("process", f"{process!r} is not a registered process") from None
    stored = spec.validate_params(params)
    task_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    run_id = runs.record(
        NewRun(
            process=spec.name,
            params=stored,
            status=RunStatus.queued,
            channel=Channel.direct,
            scheduled_at=now,
            queued_at=now,
            task_id=task_id,
        )
    )
    try:
        app.send_task(
            RUN_TASK,
            task_id=task_id,
            shadow=spec.name,  # the name Celery's tools show (see bgproc.runtime.runner)
            headers=message_headers(spec, run_id, stored, runs.ticket_key),
            retry=False,
            **spec.send_options(),
        )
    except (OperationalError, RedisError, OSError) as error:
        runs.forget(run_id)
        raise Unavailable.of_redis(error) from None
    return run_id


def message_headers(
    spec: ProcessSpec, run_id: int, params: dict[str, Any], key: str | None
) -> dict[str, Any]:
    """The headers of an ad-hoc run's message: its run id and, unless a parameter of its
    process is secret (a secret never sits in Redis), its ticket signed with the
    installation's ``key``, so that the worker starts it without reading it first (see
    :class:`bgproc.runtime.runner.Runner`)."""
    headers: dict[str, Any] = {RUN_ID_HEADER: run_id}
    if key is not None and not spec.secret_params:
        headers[TICKET_HEADER] = ad_hoc_ticket(key, run_id, spec.name, params)
    return headers
