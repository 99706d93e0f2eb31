"""The beat that ``bgproc up`` embeds in its worker, supervised: never a worker without it.

Celery's ``--beat`` forks beat once and forgets it: a beat that died left a live worker
that nothing scheduled for. Here the worker's main process watches its beat, starts it
again when it exits, and stops the whole worker (``up`` then exits non-zero with one
line) when it keeps dying.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from celery import bootsteps
from celery.beat import EmbeddedService

logger = logging.getLogger("bgproc.up")
SCHEDULER = "bgproc.runtime.beat:Scheduler"
WATCH_EVERY_S = 0.5  # a dead beat is started again within this long
RESTARTS_PER_WINDOW = 5  # more deaths than this in the window: give up
WINDOW_S = 60.0


class BeatSupervisor:
    """Starts the embedded beat, restarts it when it exits, gives up when it keeps dying."""

    gave_up: str = ""  # why the worker was stopped; empty while all is well

    def __init__(self, app: Any) -> None:
        self.app = app
        self._service: Any = None
        self._deaths: list[float] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bgproc-beat-watch", daemon=True)

    def start(self) -> None:
        self._service = self._spawn()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._service is not None and self._service.is_alive():
            self._service.stop()  # SIGTERM: beat stops between ticks

    def _spawn(self) -> Any:
        service = EmbeddedService(self.app, scheduler_cls=SCHEDULER)
        service.start()
        return service

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            if self._service.is_alive():
                continue
            code = self._service.exitcode
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < WINDOW_S] + [now]
            if len(self._deaths) > RESTARTS_PER_WINDOW:
                BeatSupervisor.gave_up = (
                    f"the embedded beat died {len(self._deaths)} times in {WINDOW_S:.0f} s "
                    f"(last exit code {code}); the worker stopped, as nothing would schedule"
                )
                logger.error("up: %s", BeatSupervisor.gave_up)
                os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown
                return
            logger.error("up: the embedded beat exited (code %s); starting it again", code)
            self._service = self._spawn()


class SupervisedBeat(bootsteps.StartStopStep):
    """The worker bootstep of ``bgproc up`` (in place of Celery's ``--beat``)."""

    label = "bgproc beat"

    def create(self, w: Any) -> BeatSupervisor:
        return BeatSupervisor(w.app)
