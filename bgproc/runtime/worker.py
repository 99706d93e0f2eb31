"""A worker's life, wired by Celery signals: fresh connections, housekeeping, a clean exit.

Each pool child drops the connections it inherited, and every process of the worker
freezes its start-up heap (:func:`_freeze_heap`); the main process announces the
worker every few seconds (``monitor workers``) with the messages it holds, gives back to
their queues those a dead worker held (:mod:`bgproc.runtime.redelivery`), sweeps for runs whose
lease expired and moves on any group run whose step ended unseen (any live worker is
enough); a clean exit stores every pending run change first. A message that Celery
discards (a task other than ``bgproc.run``, pickle or any content but JSON) is recorded
as an ``error`` run: refusals show in the monitor too.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import threading
import time
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.signals import (
    task_rejected,
    task_unknown,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from celery.worker import state
from celery.worker.consumer import Consumer as CeleryConsumer
from sqlalchemy.exc import IntegrityError

from bgproc.installation import Installation, built, installation_of
from bgproc.outages import REDIS, Outages, outage_of
from bgproc.runtime.logcapture import storable
from bgproc.runtime.notifier import Notifier
from bgproc.runtime.runrequest import held_for_later
from bgproc.runtime.sweeper import expire_late, sweep, sweep_unsent
from bgproc.services.control import WorkerInfo
from bgproc.statuses import Channel, RunStatus
from bgproc.store.transitions import NewRun

logger = logging.getLogger("bgproc.worker")
# At most; a third of the run lease, or of the redelivery delay, when that is shorter.
HOUSEKEEPING_EVERY_S = 5.0
NAME_CHARS = 200  # the run's process column; a longer task name is cut
TASK_ID_CHARS = 64  # the run's task id column; a longer id is not kept


class Housekeeping:
    """A daemon thread of the worker's main process: announce the worker, sweep lost runs."""

    def __init__(self, installation: Installation, info: WorkerInfo) -> None:
        self.installation = installation
        self.info = info
        settings = installation.settings
        self.interval_s = min(
            HOUSEKEEPING_EVERY_S, settings.run_lease_s / 3, settings.redeliver_after_s / 3
        )
        # Redis has answered since then (None: it is away); at start, since ever: a Redis
        # that itself just started is caught by its uptime
        self._redis_since: float | None = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bgproc-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop, and leave the list of live workers at once."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.installation.control.retire(self.info.name)
            self.installation.redelivery.retire(self.info.name)
        except Exception as error:  # Redis away: the announcement ages out by itself
            logger.warning("could not retire %s: %s", self.info.name, error)

    def _unsent_due(self, now: datetime) -> bool:
        """Whether this worker looks for unsent runs now: one worker per run lease, as it
        reads every queue."""
        settings = self.installation.settings
        return bool(
            self.installation.redis.set(
                settings.key("sweep", "unsent"), self.info.name, nx=True,
                ex=max(1, int(settings.run_lease_s)),
            )
        )  # fmt: skip

    def _redeliver(self, steady_s: float) -> None:
        """Say which messages this worker holds, then give back those a dead one held (not
        while the others may still be reconnecting after an outage: they would look dead)."""
        redelivery = self.installation.redelivery
        now_s = time.time()  # before the look: anything delivered earlier is in it
        redelivery.announce(self.info.name, {*state.requests, *held_for_later()}, now_s)
        if steady_s >= self.installation.settings.redeliver_after_s:
            redelivery.give_back_orphans(now_s)

    def _loop(self) -> None:
        outages = Outages(logger, "housekeeping")
        while not self._stop.is_set():
            try:
                self._round(datetime.now(UTC))
            except Exception as error:
                service = outage_of(error)
                if service is None:
                    logger.exception("housekeeping: round failed; the next one retries")
                else:
                    outages.lost(service, error)
                    if service == REDIS:
                        self._redis_since = None
            else:
                outages.all_back()
            self._stop.wait(self.interval_s)

    def _round(self, now: datetime) -> None:
        installation = self.installation
        installation.control.announce(replace(self.info, seen_at=now))
        steady_s = self._redis_steady_s()
        self._redeliver(steady_s)
        lost = []
        if steady_s >= installation.settings.run_lease_s:
            lost = sweep(
                installation.runs, installation.redis, installation.settings.run_leases_key, now
            )
        if self._unsent_due(now):
            lost += sweep_unsent(
                installation.runs,
                lambda: installation.control.message_ids(installation.queues),
                now,
                installation.settings.run_lease_s,
            )
        for run_id in lost:
            installation.group_runs.after_step(run_id, now)
        installation.group_runs.repair(now)
        expire_late(installation.runs, now)

    def _redis_steady_s(self) -> float:
        """How long Redis has answered this worker, and been up: until that covers a lease
        (or the redelivery delay), silence proves no death. A lease that could not be
        renewed because Redis was away (or restarted) is not a dead worker; its holder
        renews it within a third of a lease of Redis coming back, and announces what it
        holds within a round."""
        now = time.monotonic()
        if self._redis_since is None:
            self._redis_since = now
        uptime_s = float(self.installation.redis.info("server")["uptime_in_seconds"])
        return min(now - self._redis_since, uptime_s)


_housekeeping: list[Housekeeping] = []
_notifiers: list[Notifier] = []  # every worker sends alerts: one alive is enough
RECONNECT_EVERY_S = 1.0  # a broker that is back is consumed from again within a second


class Consumer(CeleryConsumer):
    """Celery's consumer (``worker_consumer``), reconnecting to a broker that was away every
    second, for as long as it takes, with one log line: Celery's waits grow to 30 s between
    tries (a worker would start runs up to 30 s late after a long Redis outage) and it logs
    each try."""

    def ensure_connected(self, conn: Any) -> Any:
        ensure = conn.ensure_connection

        def every_second(errback: Any = None, max_retries: Any = None, **options: Any) -> Any:
            said: list[bool] = []

            def once(exc: Exception, interval: float) -> None:
                if errback is not None and not said:
                    said.append(True)
                    errback(exc, interval)

            return ensure(once, max_retries, interval_start=RECONNECT_EVERY_S,
                          interval_step=0, interval_max=RECONNECT_EVERY_S, **options)  # fmt: skip

        conn.ensure_connection = every_second
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """Runs still going keep their messages, and can ack them once Redis is back.

        Closing the lost connection, kombu would put every unacknowledged message back in
        its queue (a second delivery of a run that is running) and, with Redis down, fail
        at it and stop the worker; a run that ended later would ack through the closed
        channel's dropped pool and stop it too (kombu 5.7). So the channels do not restore,
        and keep their pool: an ack then reaches Redis when it answers (while it does not,
        kombu logs the ack as failed and the message waits in ``unacked``).
        """
        pools = []
        for channel in list(getattr(self.connection.transport, "channels", ())):
            channel.do_restore = False
            with suppress(Exception):
                pools.append((channel, channel.pool))
        super().on_connection_error_after_connected(exc)
        for channel, pool in pools:
            channel._pool = pool


@worker_process_init.connect
def _fresh_child(**_: Any) -> None:
    """A pool child never uses the connections it inherited from the main process."""
    for installation in built():
        installation.engine.dispose(close=False)
    if built():
        _freeze_heap()


def _freeze_heap() -> None:
    """Put every object alive now out of the garbage collector's sight, once the worker is
    set up: the ~100,000 objects of the modules bgproc loads (SQLAlchemy, alembic, Celery)
    are never garbage, yet each full collection on the hot path would walk them all."""
    gc.freeze()


@worker_process_shutdown.connect
def _child_exit(**_: Any) -> None:
    _store_what_is_left()


@worker_shutdown.connect
def _worker_exit(**_: Any) -> None:
    for job in _housekeeping:
        job.stop()
    for notifier in _notifiers:
        notifier.stop()
    _store_what_is_left()


def _store_what_is_left() -> None:
    """A clean exit (pool child or worker) stores every pending run change first."""
    for installation in built():
        if "recorder" in vars(installation):
            try:
                installation.recorder.flush()
            except Exception:
                logger.exception("run records could not be stored at exit (the sweep repairs)")


def _bgproc_app(sender: Any) -> Celery | None:
    """The app of a signal's sender, if it is a bgproc app (signals fire for any app)."""
    app = getattr(sender, "app", None)
    return app if app is not None and hasattr(app.conf, "bgproc_settings") else None


@worker_ready.connect
def _start_housekeeping(sender: Any = None, **_: Any) -> None:
    """Every worker announces itself and sweeps: one that is alive is enough."""
    app = _bgproc_app(sender)
    if app is None:
        return
    controller = getattr(sender, "controller", None)
    now = datetime.now(UTC)
    info = WorkerInfo(
        name=str(sender.hostname),
        host=socket.gethostname(),
        pid=os.getpid(),
        queues=tuple(sorted(app.amqp.queues.consume_from or app.amqp.queues)),
        concurrency=int(getattr(controller, "concurrency", 0) or 0),
        pool=type(sender.pool).__module__.rsplit(".", 1)[-1] if sender.pool else "",
        started_at=now,
        seen_at=now,
    )
    installation = installation_of(app)
    job = Housekeeping(installation, info)
    _housekeeping.append(job)
    job.start()
    notifier = Notifier(installation)
    _notifiers.append(notifier)
    notifier.start()
    _freeze_heap()


@task_unknown.connect
def _record_unknown_task(sender: Any = None, name: Any = None, **signal: Any) -> None:
    """Celery discarded a message naming a task other than ours: the monitor shows the attempt."""
    task = storable(str(name))[:NAME_CHARS]
    why = f"refused: {task!r} is not a registered task (only registered processes run)"
    _record_refusal(sender, task, signal.get("id"), why)


@task_rejected.connect
def _record_rejected_message(sender: Any = None, message: Any = None, **signal: Any) -> None:
    """Celery discarded a message it would not decode (pickle, any type but JSON) or parse."""
    headers = getattr(message, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    task = storable(str(headers.get("task") or "(no task name)"))[:NAME_CHARS]
    error = signal.get("exc")
    if error is None:
        why = "refused: not a Celery task message"
    else:
        reason = storable(str(error).splitlines()[0] if str(error) else type(error).__name__)
        why = f"refused: {type(error).__name__}: {reason} (workers accept JSON only)"
    _record_refusal(sender, task, headers.get("id"), why)


def _record_refusal(sender: Any, task: str, task_id: Any, why: str) -> None:
    """An ``error`` run for a message that ran nothing; of the message only its task name and
    id are kept (its arguments are anyone's), and a run it names is left as it is."""
    app = _bgproc_app(sender)
    if app is None:
        return
    try:
        now = datetime.now(UTC)
        refused = NewRun(
            process=task,
            params={},
            status=RunStatus.error,
            channel=Channel.direct,
            queued_at=now,
            ended_at=now,
            worker=str(getattr(sender, "hostname", "") or "")[:NAME_CHARS],
            error=why,
        )
        message_id = storable(str(task_id or ""))
        runs = installation_of(app).runs
        try:
            kept_id = message_id if 0 < len(message_id) <= TASK_ID_CHARS else None
            runs.record(replace(refused, task_id=kept_id))
        except IntegrityError:  # the id of another run: the refusal is kept without it
            runs.record(refused)
    except Exception:
        logger.exception("could not record the refused message for %r", task)
