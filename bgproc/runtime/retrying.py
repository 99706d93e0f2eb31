"""Retries on error, in the worker: a run that ends ``error`` and has attempts left is
followed by a new run of the same fire, once its backoff has passed.

The retry is scheduled, never a sleeping thread: its row is queued (in the same
transaction that ends the failed attempt, :meth:`~bgproc.store.runs.RunStore.fail_and_retry`,
so it happens once) and its message is published with the retry's due time as its ETA. A
worker holds such a message (unacknowledged) until then and says so
(:func:`bgproc.runtime.runrequest.held_for_later`): a worker that stops gives it back,
one that dies has it given back (:mod:`bgproc.runtime.redelivery`), and whichever worker
takes it runs it when due, exactly once, as any run.

Not retried: a run that ended ``killed``, ``skipped`` or ``lost``; a group's step (its group
decides); and, with prevent-concurrent, a run whose request fires again before its retry
would be due: the next fire comes first, so the retry never overlaps it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bgproc.registry import ProcessSpec
from bgproc.settings import RUN_ID_HEADER, RUN_TASK
from bgproc.statuses import RunStatus
from bgproc.store.retries import Retry, RetryBasis
from bgproc.store.tickets import Ticket
from bgproc.store.transitions import RunOutcome
from bgproc.timing.deadlines import start_by
from bgproc.timing.retry import RetryPolicy
from bgproc.timing.walltime import utc_now

if TYPE_CHECKING:
    from bgproc.installation import Installation

logger = logging.getLogger("bgproc.runner")


class Retrier:
    """Turns a failed attempt into its retry, when its policy has one left."""

    def __init__(self, installation: Installation) -> None:
        self.installation = installation

    def retried(self, ticket: Ticket, spec: ProcessSpec, outcome: RunOutcome) -> bool:
        """Whether ``outcome`` (an error) was stored together with its retry; either way
        the caller records it as any end (a no-op once stored). A failure here never
        breaks the run's record."""
        if outcome.status is not RunStatus.error or ticket.group_run_id is not None:
            return False
        try:
            return self._retry(ticket, spec, outcome)
        except Exception:
            logger.exception("run %s: no retry queued (its end is recorded as it is)",
                             ticket.run_id)  # fmt: skip
            return False

    def _retry(self, ticket: Ticket, spec: ProcessSpec, outcome: RunOutcome) -> bool:
        runs, recorder = self.installation.runs, self.installation.recorder
        basis = runs.retry_basis(ticket.run_id)
        policy = self._policy(basis, spec)
        if basis is None or policy is None or basis.try_number >= policy.tries:
            return False
        due = outcome.ended_at + timedelta(seconds=policy.delay_s(basis.try_number))
        first_fire = self._fire_before(ticket, spec, basis, due)
        if first_fire is not None:
            recorder.append_log(
                ticket.run_id,
                f"… not retried: its request fires again at {first_fire.isoformat()}, before "
                f"the retry would be due ({due.isoformat()}; prevent concurrent executions)\n",
            )
            return False
        retry = Retry(
            task_id=str(uuid.uuid4()),
            due_at=due,
            try_number=basis.try_number + 1,
            max_tries=policy.tries,
            first_run_id=basis.first_run_id or ticket.run_id,
            start_by=start_by(due, self.installation.registry.deadlines_of(
                spec.name, ticket.request_deadlines).start_deadline_s),
        )  # fmt: skip
        recorder.flush()  # the attempt's start and log first: its end then shows complete
        retry_id = runs.fail_and_retry(outcome, retry, utc_now())
        if retry_id is None:
            return False
        recorder.append_log(
            ticket.run_id,
            f"… attempt {basis.try_number} of {policy.tries} failed; attempt "
            f"{retry.try_number} is run {retry_id}, at {due.isoformat()}\n",
        )
        self._send(retry_id, retry, ticket, spec)
        return True

    @staticmethod
    def _policy(basis: RetryBasis | None, spec: ProcessSpec) -> RetryPolicy | None:
        """The request's own policy, else its process's default."""
        if basis is not None and basis.request_retry is not None:
            return RetryPolicy.from_dict(basis.request_retry)
        return spec.retry

    def _fire_before(
        self, ticket: Ticket, spec: ProcessSpec, basis: RetryBasis, due: datetime
    ) -> datetime | None:
        """With prevent-concurrent, the request's next fire if it comes before ``due``."""
        if ticket.request_id is None:
            return None
        if not (spec.prevent_concurrent or basis.request_prevent_concurrent):
            return None
        fires = self.installation.requests.next_runs(ticket.request_id, 1)
        return fires[0] if fires and fires[0] <= due else None

    def _send(self, retry_id: int, retry: Retry, ticket: Ticket, spec: ProcessSpec) -> None:
        """Publish the retry's message, due at its time; if that fails the retry is lost,
        visibly (the attempt it retried no longer says "retrying at")."""
        try:
            self.installation.app.send_task(
                RUN_TASK, task_id=retry.task_id, shadow=ticket.process,
                headers={RUN_ID_HEADER: retry_id}, eta=retry.due_at, retry=False,
                **spec.send_options(),
            )  # fmt: skip
        except Exception as error:
            logger.exception("retry run %s could not be sent", retry_id)
            why = f"lost: its message could not be sent ({type(error).__name__})"
            self.installation.runs.stop_retry(retry_id, RunStatus.lost, why, utc_now())
