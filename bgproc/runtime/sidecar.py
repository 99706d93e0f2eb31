"""A command that ``bgproc up`` runs beside its worker (``up --web``'s web server), in the
same process tree: started with the worker, started again if it exits, stopped with it.

It is a process of its own (a fresh interpreter, no state shared with the worker, which
forks its pool), a child of the worker's main process: it stops when ``up`` stops, and on
Linux it is sent SIGTERM if ``up`` dies without stopping it. One that keeps exiting (a
port in use) is given up with one line; the worker and its beat go on without it.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from celery import bootsteps

logger = logging.getLogger("bgproc.up")
WATCH_EVERY_S = 0.5  # an exited sidecar is started again within this long (and not sooner)
RESTARTS_PER_WINDOW = 5  # more exits than this in the window: give up on it
WINDOW_S = 60.0
STOP_GRACE_S = 8.0  # a sidecar asked to stop (SIGTERM) is killed after this long


@cache
def _parent_death_signal() -> Callable[[], None] | None:
    """What a child runs before it starts, so it gets SIGTERM when its parent dies (Linux).
    The C library is loaded here, once, in the parent: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    set_death_signal = 1  # PR_SET_PDEATHSIG

    def die_with_parent() -> None:
        libc.prctl(set_death_signal, signal.SIGTERM)

    return die_with_parent


class Sidecar:
    """Runs ``argv`` while the worker runs."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self._process: subprocess.Popen[bytes] | None = None
        self._exits: list[float] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # spawn and stop never cross
        self._watcher = threading.Thread(target=self._watch, name=f"bgproc-{name}", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("up: the %s did not stop in %.0f s; killed", self.name, STOP_GRACE_S)
                process.kill()
                process.wait()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self._process = subprocess.Popen(self.argv, preexec_fn=_parent_death_signal())

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            process = self._process
            if process is None or process.poll() is None:
                continue
            now = time.monotonic()
            self._exits = [t for t in self._exits if now - t < WINDOW_S] + [now]
            if len(self._exits) > RESTARTS_PER_WINDOW:
                logger.error(
                    "up: the %s exited %d times in %.0f s (last exit code %s); the worker and "
                    "beat go on without it", self.name, len(self._exits), WINDOW_S,
                    process.returncode,
                )  # fmt: skip
                return
            logger.error("up: the %s exited (code %s); starting it again", self.name,
                         process.returncode)  # fmt: skip
            self._spawn()


def sidecar_step(name: str, argv: Sequence[str]) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that runs ``argv`` beside the worker, as :class:`Sidecar`."""

    class SidecarStep(bootsteps.StartStopStep):
        label = f"bgproc {name}"

        def create(self, w: Any) -> Sidecar:
            return Sidecar(name, argv)

    return SidecarStep
