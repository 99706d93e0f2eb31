"""The one Celery task: run a registered process, with its context, and record the run.

Every run's row exists before its message is published (queued by beat or ``bgproc
run``), and the message carries its ids: the run is read from the database when it
starts, so secrets never sit in Redis, and only processes in the registry can ever run.
An ad-hoc run's message also carries its ticket (process and parameters, when none is
secret): its first delivery starts without a read. A message of an older bgproc (a
request id only) gets its row when it starts.

On the hot path a run costs one read (ad hoc: none, and one Redis round trip if its
process is killable, for a kill asked while it was queued); its changes go
through the process's :class:`~bgproc.runtime.recorder.RunRecorder`. What a pool child cannot
report — a hard time limit, its own death — the worker's main process records
(:class:`~bgproc.runtime.runrequest.RunRequest`); a worker that dies whole is found by the sweeper
(:mod:`bgproc.runtime.sweeper`), and the messages it held go back to their queues
(:mod:`bgproc.runtime.redelivery`). A message that may have a twin — redelivered, or held by a
worker that fell silent long enough for others to give it back — claims its start in
the database first (one commit): of two copies, one starts.

Celery's own tools (Flower, ``celery events``, ``celery inspect``) see each run under its
process's name (the message's ``shadow`` name; one task is registered) and with its
outcome, as the monitor recorded it (:mod:`bgproc.runtime.outcome`). What a message asks
for is read from its headers once (:class:`~bgproc.runtime.fire.Fire`).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import replace
from types import TracebackType
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject

from bgproc.errors import NotFound, Unavailable
from bgproc.installation import Installation, installation_of
from bgproc.progress import Progress
from bgproc.registry import ProcessContext, ProcessSpec
from bgproc.runtime.fire import Fire
from bgproc.runtime.leases import Lease
from bgproc.runtime.logcapture import LogCapture
from bgproc.runtime.outcome import DROPPED, Outcome, RunFailed, report
from bgproc.runtime.retrying import Retrier
from bgproc.runtime.runrequest import RunRequest
from bgproc.settings import RUN_TASK
from bgproc.statuses import Channel, RequestStatus, RunStatus
from bgproc.store.runs import EXPIRED
from bgproc.store.tickets import Ticket
from bgproc.store.transitions import RunOutcome, RunRefusal, RunStart, bounded_result
from bgproc.timing.walltime import utc_now

REPLACE_WAIT_S = 30.0  # a replaced run has this long to stop (its lease expires as soon)
REPLACE_POLL_S = 0.2
logger = logging.getLogger("bgproc.runner")
RUNNABLE_REQUEST = frozenset({RequestStatus.scheduled, RequestStatus.complete})
# A run found in one of these was started before: this delivery is its next attempt.
RESTARTABLE = frozenset({RunStatus.processing, RunStatus.lost})
MAX_ATTEMPTS = 3  # a run whose worker died this many times is not tried again
UNAVAILABLE_RETRY_S = 1.0  # a message that found the database away waits this long


@shared_task(
    name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, Request=RunRequest,
    acks_on_failure=True, throws=(RunFailed,),  # a failed run is acked: never run again
)  # fmt: skip
def run_process(task: Task, **_ignored: Any) -> None:
    """Celery's entry point; everything else happens in :class:`Runner`, then Celery is
    told the outcome (:func:`report`).

    With the database away, nothing can be checked or recorded: the message goes back
    to its queue (late acks) and is tried again, at most once a second per worker slot.
    """
    runner = Runner(installation_of(task.app), Fire.of(task))
    try:
        runner.run()
    except Unavailable as error:
        logger.warning("%s; message %s goes back to the queue", error, task.request.id)
        time.sleep(UNAVAILABLE_RETRY_S)
        raise Reject(str(error), requeue=True) from None
    report(runner.outcome)


class Runner:
    """Runs one fire: checks, lease, the process itself, and the run record."""

    def __init__(self, installation: Installation, fire: Fire) -> None:
        self.installation = installation
        self.fire = fire
        self.recorder = installation.recorder
        self.outcome = DROPPED  # what this delivery recorded, once it did

    def run(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return
        if ticket.is_group_run:
            self._start_group(ticket)
            return
        try:
            self._run_one(ticket)
        finally:
            if ticket.group_run_id is not None:
                self._advance_group(ticket.group_run_id)

    def _run_one(self, ticket: Ticket) -> None:
        attempt = self._attempt(ticket)
        if attempt is None:
            return
        in_time = self._in_time(ticket, attempt)  # a claim too, when it has a deadline
        if in_time is False or (in_time is None and not self._claimed(ticket, attempt)):
            return
        spec, refusal = self._check(ticket)
        if spec is None or refusal is not None:
            status, why = refusal or (RunStatus.error, "unreachable")
            self._refuse(ticket, attempt, status, why)
            return
        lease_key = self._lease_key(ticket, spec)
        lease = Lease(self.installation.redis, lease_key, ticket.run_id) if lease_key else None
        if lease is not None and not lease.acquire() and not self._replaced(ticket, lease):
            why = "a run of this process is still going (prevent concurrent executions)"
            if ticket.request_replace_running:
                why = f"the running run did not stop within {REPLACE_WAIT_S:.0f} s to be replaced"
            self._refuse(ticket, attempt, RunStatus.skipped, f"skipped: {why}")
            return
        try:
            self._execute(ticket, attempt, spec)
        finally:
            if lease is not None:
                lease.release()

    def _ticket(self) -> Ticket | None:
        """The run's row as the runner needs it (created here for a message without one).

        An ad-hoc run's first delivery starts on the ticket its message carries: nothing
        else can have changed its row but ``monitor kill``, which Redis also knows of (and
        which refuses a process that is not killable: its run needs no look in Redis). A
        redelivered message may be a run that already went: its row is read.
        """
        fire, runs = self.fire, self.installation.runs
        run_id = fire.run_id
        if run_id is not None and fire.carried is not None and not fire.redelivered:
            carried = Ticket.of_ad_hoc(run_id, fire.carried, runs.ticket_key)
            if carried is None:
                logger.warning("run %s: its message's ticket is not this installation's: "
                               "the run is read instead", run_id)  # fmt: skip
            elif self._killable(carried.process) and self.installation.control.take_kill(run_id):
                logger.info("run %s was killed before it started: dropped", run_id)
                self.outcome = Outcome(RunStatus.killed, "killed on request before it started")
                return None
            else:
                return carried
        if run_id is None and fire.request_id is not None:
            run_id = self._open_for_request(fire.request_id)
        if run_id is None:
            logger.error("message %s names no request and no run: refused", fire.task_id)
            return None
        ticket = runs.ticket(run_id)
        if ticket is None and fire.run_id is not None and fire.request_id is not None:
            # Beat's row of the fire is gone: PostgreSQL lost its asynchronous commit in a
            # crash (RunStore.queue_fire). The message names its request: the row is made again.
            logger.warning("run %s of message %s is gone: made again from request %s",
                           run_id, fire.task_id, fire.request_id)  # fmt: skip
            run_id = self._open_for_request(fire.request_id)
            ticket = runs.ticket(run_id) if run_id is not None else None
        if ticket is None:
            logger.warning("run %s of message %s is gone (deleted): dropped", run_id, fire.task_id)
        return ticket

    def _killable(self, process: str) -> bool:
        """Whether ``monitor kill`` may have been asked for a run of ``process``."""
        try:
            return self.installation.registry.get(process).killable
        except NotFound:  # refused later; no kill was asked for it either
            return False

    def _open_for_request(self, request_id: int) -> int | None:
        """The run of this message's fire of ``request_id``, found by its task id or made."""
        fire = self.fire
        return self.installation.runs.open_for_request(
            fire.task_id, request_id, fire.scheduled_at, utc_now(),
            self.installation.registry.deadlines_of,
        )  # fmt: skip

    def _start_group(self, ticket: Ticket) -> None:
        """A group fire: its parent run starts the group's first step (or is refused)."""
        now = utc_now()
        refusal = self._refusal(ticket)
        if refusal is not None:
            status, why = refusal
            self.installation.runs.close_open(ticket.run_id, "", status, now, why)
            self.outcome = Outcome(status, why)
            return
        if ticket.start_by is not None and ticket.status is RunStatus.queued and (
            now > ticket.start_by
        ):  # the group's start reads its row locked: an expiry sweep first leaves it be
            why = f"{EXPIRED}; {self.fire.worker} took it too late"
            self.installation.runs.close_open(ticket.run_id, "", RunStatus.expired, now, why,
                                              (RunStatus.queued,))  # fmt: skip
            self.outcome = Outcome(RunStatus.expired, why)
            return
        self.installation.group_runs.start(ticket.run_id, now, self.fire.worker, ticket.attempt)
        self.outcome = Outcome(RunStatus.processing)

    def _advance_group(self, group_run_id: int) -> None:
        """A step ended: once its end is stored, the group starts its next step or ends."""
        try:
            self.recorder.flush()
            self.installation.group_runs.advance(group_run_id, utc_now())
        except Exception:
            logger.exception("group run %s not advanced now (the sweep will)", group_run_id)

    def _attempt(self, ticket: Ticket) -> int | None:
        """This delivery's attempt number, or None if it must not run (a duplicate)."""
        if ticket.status == RunStatus.queued:
            return ticket.attempt + 1 if self.fire.redelivered else ticket.attempt
        if ticket.status is RunStatus.lost and ticket.group_run_id is not None:
            logger.warning("run %s, a step of a group, was lost: it counts as failed, not "
                           "run again", ticket.run_id)  # fmt: skip
            return None
        if ticket.status in RESTARTABLE:
            if ticket.status == RunStatus.processing and self._still_running(ticket.run_id):
                logger.warning(
                    "run %s is still running elsewhere: duplicate delivery of %s dropped",
                    ticket.run_id,
                    self.fire.task_id,
                )
                return None
            if ticket.attempt >= MAX_ATTEMPTS:
                logger.error(
                    "run %s was %s in each of %d attempts: not tried again",
                    ticket.run_id,
                    ticket.status.value,
                    ticket.attempt,
                )
                # A run left processing without a lease (its worker died between the two)
                # would otherwise stay so: nothing else will come for it.
                why = f"lost: its worker died in each of {ticket.attempt} attempts; not tried again"
                self.installation.runs.close_open(
                    ticket.run_id, "", RunStatus.lost, utc_now(), why, (RunStatus.processing,)
                )
                self.outcome = Outcome(RunStatus.lost, why)
                return None
            attempt = ticket.attempt + 1
            self.recorder.append_log(
                ticket.run_id,
                f"… attempt {ticket.attempt} was {ticket.status.value}; attempt {attempt} starts\n",
            )
            return attempt
        logger.warning(
            "run %s already ended (%s): duplicate delivery of %s dropped",
            ticket.run_id,
            ticket.status.value,
            self.fire.task_id,
        )
        return None

    def _claimed(self, ticket: Ticket, attempt: int) -> bool:
        """Whether this delivery may go on: a message that may have a twin claims its start
        in the database first (one commit), so of two copies only one starts."""
        if not self.fire.may_have_a_twin():
            return True
        if self.installation.runs.claim_start(
            ticket.run_id, ticket.status, ticket.attempt, attempt, self.fire.worker
        ):
            return True
        logger.warning("run %s was started by another copy of message %s: this one dropped",
                       ticket.run_id, self.fire.task_id)  # fmt: skip
        return False

    def _in_time(self, ticket: Ticket, attempt: int) -> bool | None:
        """Whether a queued run with a start deadline may start: it claims its start in the
        database, by its deadline (one commit, which also keeps a twin of its message from
        starting it); too late, it ends ``expired`` instead. Of a start and the expiry sweep
        racing, one wins; a loser's message is acked, unrun. None: no deadline applies."""
        if ticket.start_by is None or ticket.status is not RunStatus.queued:
            return None  # a restart (its run started in time before) has no start deadline
        claimed = self.installation.runs.claim_in_time(
            ticket.run_id, ticket.attempt, attempt, self.fire.worker, utc_now()
        )
        if claimed is True:
            return True
        if claimed is False:
            logger.warning("run %s: not started by its start deadline %s: expired",
                           ticket.run_id, ticket.start_by.isoformat())  # fmt: skip
            self.outcome = Outcome(RunStatus.expired, "expired: not started by its deadline")
        else:
            logger.warning("run %s was started or expired meanwhile: message %s dropped",
                           ticket.run_id, self.fire.task_id)  # fmt: skip
        return False

    def _still_running(self, run_id: int) -> bool:
        """Whether the run's lease is alive: its worker is still renewing it."""
        key = self.installation.settings.run_leases_key
        expiry = self.installation.redis.zscore(key, str(run_id))
        return expiry is not None and expiry > utc_now().timestamp()

    @staticmethod
    def _refusal(ticket: Ticket) -> tuple[RunStatus, str] | None:
        """Why a planned run must not start: its request is gone or no longer scheduled."""
        if ticket.channel != Channel.scheduler:
            return None
        if ticket.request_status is None:
            return RunStatus.skipped, "skipped: its request was deleted"
        if ticket.request_status not in RUNNABLE_REQUEST:
            return (
                RunStatus.skipped,
                f"skipped: request {ticket.request_id} is {ticket.request_status.value}",
            )
        return None

    def _check(self, ticket: Ticket) -> tuple[ProcessSpec | None, tuple[RunStatus, str] | None]:
        """The process to run, or why the fire must not run."""
        refusal = self._refusal(ticket)
        if refusal is not None:
            return None, refusal
        try:
            return self.installation.registry.get(ticket.process), None
        except NotFound:
            return None, (RunStatus.error, f"{ticket.process} is not a registered process: refused")

    def _replaced(self, ticket: Ticket, lease: Lease) -> bool:
        """``--replace-running``: ask the request's running run to stop, and take the lease
        once it has (True); False if it is not a replacing request, or the run held on."""
        own = self.installation.settings.key("lease", "request", str(ticket.request_id))
        if not ticket.request_replace_running or lease.key != own:  # never another's run
            return False
        redis = self.installation.redis
        holder = Lease.holder(redis, lease.key)
        if holder is not None and holder != ticket.run_id:
            logger.info("run %s replaces run %s of request %s: asking it to stop",
                        ticket.run_id, holder, ticket.request_id)  # fmt: skip
            self.installation.control.ask_kill(holder)
        deadline = time.monotonic() + REPLACE_WAIT_S
        while time.monotonic() < deadline:
            if lease.acquire():
                return True
            time.sleep(REPLACE_POLL_S)
        return False

    def _lease_key(self, ticket: Ticket, spec: ProcessSpec) -> str | None:
        key = self.installation.settings.key
        if spec.prevent_concurrent:
            return key("lease", "process", spec.name)
        if ticket.request_prevent_concurrent and ticket.group_run_id is None:
            return key("lease", "request", str(ticket.request_id))  # a group holds its own
        return None

    def _refuse(self, ticket: Ticket, attempt: int, status: RunStatus, why: str) -> None:
        self.outcome = Outcome(status, why)
        self.recorder.ended(
            RunRefusal(ticket.run_id, attempt, status, utc_now(), self.fire.worker, why)
        )

    def _execute(self, ticket: Ticket, attempt: int, spec: ProcessSpec) -> None:
        run_id = ticket.run_id
        started = utc_now()
        deadlines = self.installation.registry.deadlines_of(spec.name, ticket.request_deadlines)
        stop = self.recorder.started(
            RunStart(run_id, attempt, self.fire.worker, started), spec.killable,
            deadlines.runtime_limit_s, deadlines.kills,
        )  # fmt: skip
        log = spec.logger
        redaction = spec.redaction(ticket.params)  # a secret the process lets out shows as ***

        def record_progress(progress: Progress) -> None:
            progress = replace(progress, message=redaction.text(progress.message))
            self.recorder.progress(run_id, attempt, progress)

        context = ProcessContext(
            log, run_id, ticket.request_id, stop_event=stop, report=record_progress
        )
        status, result, error, trace = RunStatus.success, None, None, None
        frames: TracebackType | None = None  # the process's, for Celery's report
        # The capture ends (its last lines handed over) before the run's end is reported:
        # the recorder stores them first, so an ended run's log is complete.
        redact = redaction.text if redaction else None
        with LogCapture(run_id, self.recorder.append_log, context_logger=log, redact=redact):
            try:
                result = spec.func(context, **spec.call_kwargs(ticket.params))
            except Exception as failure:
                status, error = RunStatus.error, f"{type(failure).__name__}: {failure}"
                trace = traceback.format_exc()
                frames = failure.__traceback__
                logger.error("run failed: %s", error)
        if stop is not None and stop.is_set():
            status = RunStatus.killed
            error = stop.why + (f"; then {error}" if error else "")
        ended = utc_now()
        error = error and redaction.text(error)
        outcome = RunOutcome(
            run_id,
            attempt,
            status,
            ended,
            duration_ms=int((ended - started).total_seconds() * 1000),
            result=redaction.value(bounded_result(result)),
            error=error,
            traceback=trace and redaction.text(trace),
        )
        # An error with a retry left is stored at once, with its retry; the recorder's
        # copy of the end then changes nothing, and lets go of the run (its lease).
        Retrier(self.installation).retried(ticket, spec, outcome)
        self.recorder.ended(outcome)
        self.outcome = Outcome(status, error, frames if status is RunStatus.error else None)
