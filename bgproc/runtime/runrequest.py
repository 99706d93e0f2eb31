"""The worker's main process side of a run: what its pool child cannot report.

Apart from :mod:`bgproc.runtime.runner` because it runs in another process: the task runs
in a pool child, while Celery's :class:`~celery.worker.request.Request` lives in the
worker's main process and outlives the child. A hard time limit kills the child before it
can write anything, and a child that dies (SIGKILL, out of memory) reports nothing; the
main process sees both and closes the run. A worker that dies whole is found by the sweeper
(:mod:`bgproc.runtime.sweeper`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.exceptions import Ignore
from celery.worker.request import Request

from bgproc.installation import installation_of
from bgproc.runtime.fire import int_or_none
from bgproc.runtime.redelivery import SAFE_UNTIL
from bgproc.settings import RUN_ID_HEADER
from bgproc.statuses import RunStatus
from bgproc.timing.walltime import utc_now

logger = logging.getLogger("bgproc.runner")  # one logger for a run, in either process
# The requests of messages held until their ETA (a retry waiting for its backoff): Celery
# keeps them in its timer, not in ``state.requests``, until they are due.
_WAITING: weakref.WeakSet[RunRequest] = weakref.WeakSet()
_WAITING_LOCK = threading.Lock()  # added by the consumer, read by housekeeping


def held_for_later() -> set[str]:
    """Task ids of the messages this worker holds for later and has not acknowledged: they
    are this worker's as much as the running ones (:mod:`bgproc.runtime.redelivery`)."""
    with _WAITING_LOCK:
        return {request.id for request in _WAITING if not request.acknowledged}


class RunRequest(Request):
    """Celery's request, in the worker's main process: records what the pool child cannot.

    A hard time limit kills the child before it can write anything, and a child that
    dies (SIGKILL, out of memory) reports nothing; the main process sees both.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._received_at = time.time()
        if self.eta is not None:
            with _WAITING_LOCK:
                _WAITING.add(self)

    @property
    def request_dict(self) -> dict[str, Any]:
        """What the pool child is sent (Celery's worker reads it here at dispatch), with
        until when its message cannot have been given back (see
        :meth:`~bgproc.runtime.fire.Fire.may_have_a_twin`)."""
        request: dict[str, Any] = self._request_dict
        redelivery = installation_of(self.task.app).redelivery
        request[SAFE_UNTIL] = redelivery.safe_until(self._received_at)
        return request

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            self._close(
                RunStatus.error, f"hard time limit exceeded ({timeout} s): the process was killed"
            )

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        error = exc_info.exception
        if isinstance(error, ExceptionWithTraceback):
            error = error.exc
        if isinstance(error, WorkerLostError):
            self._close(RunStatus.lost, f"lost: the worker process running it died ({error})")
        elif isinstance(error, Ignore):
            # Celery sends no event for an ignored task: its monitors would show it
            # started for ever. State (Flower's) takes this one as the state IGNORED.
            self.send_event("task-ignored", reason=str(error))
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _close(self, status: RunStatus, why: str) -> None:
        run_id = int_or_none(self._request_dict.get(RUN_ID_HEADER))
        try:
            installation = installation_of(self.task.app)
            now = utc_now()
            installation.runs.close_open(run_id, self.id, status, now, why)
            installation.redis.zrem(installation.settings.run_leases_key, str(run_id))
            if run_id is not None:
                installation.group_runs.after_step(run_id, now)
        except Exception:
            logger.exception("could not record %s of task %s (the sweeper will)", status, self.id)
