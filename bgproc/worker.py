"""A worker's life, wired by Celery signals: fresh connections, housekeeping, a clean exit.

Each pool child drops the connections it inherited; the main process announces the
worker every few seconds (``monitor workers``), sweeps for runs whose lease expired and
moves on any group run whose step ended unseen (any live worker is enough); a clean
exit stores every pending run change first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from bgproc.control import WorkerInfo
from bgproc.installation import Installation, built, installation_of
from bgproc.sweeper import sweep

logger = logging.getLogger("bgproc.worker")
HOUSEKEEPING_EVERY_S = 5.0  # at most; a third of the run lease when that is shorter


class Housekeeping:
    """A daemon thread of the worker's main process: announce the worker, sweep lost runs."""

    def __init__(self, installation: Installation, info: WorkerInfo) -> None:
        self.installation = installation
        self.info = info
        self.interval_s = min(HOUSEKEEPING_EVERY_S, installation.settings.run_lease_s / 3)
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
        except Exception as error:  # Redis away: the announcement ages out by itself
            logger.warning("could not retire %s: %s", self.info.name, error)

    def _loop(self) -> None:
        installation = self.installation
        while not self._stop.is_set():
            now = datetime.now(UTC)
            try:
                installation.control.announce(replace(self.info, seen_at=now))
                lost = sweep(
                    installation.runs, installation.redis, installation.settings.run_leases_key, now
                )
                for run_id in lost:
                    installation.group_runs.after_step(run_id, now)
                installation.group_runs.repair(now)
            except Exception as error:  # Redis or the database away: the next round retries
                logger.warning("housekeeping: %s: %s", type(error).__name__, error)
            self._stop.wait(self.interval_s)


_housekeeping: list[Housekeeping] = []


@worker_process_init.connect
def _fresh_child(**_: Any) -> None:
    """A pool child never uses the connections it inherited from the main process."""
    for installation in built():
        installation.engine.dispose(close=False)


@worker_process_shutdown.connect
def _child_exit(**_: Any) -> None:
    _store_what_is_left()


@worker_shutdown.connect
def _worker_exit(**_: Any) -> None:
    for job in _housekeeping:
        job.stop()
    _store_what_is_left()


def _store_what_is_left() -> None:
    """A clean exit (pool child or worker) stores every pending run change first."""
    for installation in built():
        if "recorder" in vars(installation):
            try:
                installation.recorder.flush()
            except Exception:
                logger.exception("run records could not be stored at exit (the sweep repairs)")


@worker_ready.connect
def _start_housekeeping(sender: Any = None, **_: Any) -> None:
    """Every worker announces itself and sweeps: one that is alive is enough."""
    app = getattr(sender, "app", None)
    if app is None or not hasattr(app.conf, "bgproc_settings"):
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
    job = Housekeeping(installation_of(app), info)
    _housekeeping.append(job)
    job.start()
