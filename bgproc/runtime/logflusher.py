"""The one thread per worker process that writes every run's pending Process Log lines.

Apart from :mod:`bgproc.runtime.logcapture` because it outlives the runs: a capture
registers with it at its first line and leaves at its end. Shared, so a run pays no
thread start and a threads pool no thread per run; the cost is that a database write that
hangs delays the other runs' lines (never loses them).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgproc.runtime.logcapture import LogCapture


class Flusher:
    """Writes the pending lines of every capture, each at its own interval.

    Started lazily; after a fork (prefork pool) the child starts its own.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._captures: set[LogCapture] = set()
        self._thread: threading.Thread | None = None

    def add(self, capture: LogCapture) -> None:
        with self._cond:
            capture.due = time.monotonic() + capture.flush_interval_s
            self._captures.add(capture)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="bgproc-log-flusher", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, capture: LogCapture) -> None:
        with self._cond:
            self._captures.discard(capture)

    def _loop(self) -> None:
        cond = self._cond  # this thread's own, even if a fork resets the attribute
        while True:
            with cond:
                now = time.monotonic()
                due = [c for c in self._captures if c.due <= now]
                for capture in due:
                    capture.due = now + capture.flush_interval_s
                if not due:
                    soonest = min((c.due for c in self._captures), default=None)
                    cond.wait(None if soonest is None else soonest - now)
                    continue
            for capture in due:
                try:
                    capture.flush()
                except Exception as error:  # flush guards itself; this is belt and braces
                    capture.report_failure("flush", error)


FLUSHER = Flusher()
