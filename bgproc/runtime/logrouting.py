"""Routing a thread's output to its run's Process Log: one process-wide handler and streams.

Apart from :mod:`bgproc.runtime.logcapture` because this part is shared: a capture belongs
to one run, but the loggers and ``sys.stdout``/``sys.stderr`` belong to the whole worker
process. The :class:`Hub` knows which capture each thread has and, while any is active,
puts in place:

- one routing handler, first in the root logger, ``celery.task`` (which does not
  propagate to root) and each run's context logger (which may have been told not to
  propagate): it hands a record to the capture of the thread that made it, redacted first
  so that every later handler (the worker's console) shows ``***`` too;
- thread-aware stand-ins for the two streams, installed over whatever is there (a real
  file, or Celery's ``LoggingProxy`` when ``worker_redirect_stdouts`` is on).

Only what a run's own thread emits reaches its capture, so concurrent runs on a threads
pool never mix. Nothing here may break a run: a capture's failure is reported by it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TextIO

from billiard.exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    from bgproc.runtime.logcapture import LogCapture

TASK_LOGGER = "celery.task"  # Celery's task logger: propagate=False, so root never sees it
STREAMS = ("stdout", "stderr")
# Raised into the run's thread by a signal (Celery's soft time limit): they may land in
# the capture's code while the process logs, and must reach the process, not be swallowed.
INTERRUPTS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded,)

_local = threading.local()  # .quiet: records made while set are the capture's own business
_FORMATTER = logging.Formatter()


@contextmanager
def quietly() -> Iterator[None]:
    """What the calling thread logs or prints inside is kept out of its capture."""
    previous = getattr(_local, "quiet", False)
    _local.quiet = True
    try:
        yield
    finally:
        _local.quiet = previous


def _redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    """The record as the capture and every later handler (the worker's console) show it."""
    try:
        message = record.getMessage()
    except INTERRUPTS:
        raise
    except Exception:  # unformattable: stored as its parts, which the capture redacts
        return
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class _RouteHandler(logging.Handler):
    """One handler for every capture: hands a record to the capture of its thread."""

    def handle(self, record: logging.LogRecord) -> bool:
        """No handler-wide lock: each capture has its own, so runs never wait on each other."""
        if getattr(_local, "quiet", False):
            return False
        thread = record.thread if record.thread is not None else threading.get_ident()
        capture = HUB.current(thread)
        if capture is None:
            return False
        try:
            if capture.redact is not None:
                _redact_record(record, capture.redact)
            capture.add_record(record)
        except INTERRUPTS:
            raise
        except Exception as error:
            capture.report_failure("record", error)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


class _StreamRouter:
    """Stands in for ``sys.stdout``/``sys.stderr``: the capturing thread's writes are captured.

    Other threads write to the original stream as before. A captured write still goes to
    the original too (the worker's console keeps showing it), with the records that this
    makes (Celery's ``LoggingProxy``) kept out of the capture: a print is stored once.
    """

    def __init__(self, name: str, original: TextIO) -> None:
        self._name = name
        self.original = original

    def write(self, data: str) -> int:
        capture = HUB.current(threading.get_ident())
        if (
            capture is not None
            and data
            and isinstance(data, str)
            and not getattr(_local, "quiet", False)
        ):
            try:
                capture.add_text(self._name, data)
            except INTERRUPTS:
                raise
            except Exception as error:
                capture.report_failure(self._name, error)
            previous = getattr(_local, "quiet", False)
            _local.quiet = True
            try:
                self.original.write(capture.redact(data) if capture.redact else data)
            except INTERRUPTS:
                raise
            except Exception:  # the console is gone (closed pipe): the capture still has it
                pass
            finally:
                _local.quiet = previous
            return len(data)
        return self.original.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with suppress(Exception):
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class Hub:
    """Which capture each thread has, and the handler and streams they share (refcounted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, list[LogCapture]] = {}  # a stack: nested runs, inner wins
        self._handler = _RouteHandler()
        self._logger_refs: dict[logging.Logger, int] = {}  # captures routed through each
        self._streams: dict[str, _StreamRouter] = {}
        self._stream_refs = 0

    def current(self, thread: int) -> LogCapture | None:
        stack = self._by_thread.get(thread)
        return stack[-1] if stack else None

    @staticmethod
    def _loggers(capture: LogCapture) -> tuple[logging.Logger, ...]:
        context = capture.context_logger
        if context is None or context in _ALWAYS_ROUTED:
            return _ALWAYS_ROUTED
        return (*_ALWAYS_ROUTED, context)

    def attach(self, capture: LogCapture) -> None:
        with self._lock:
            self._by_thread.setdefault(capture.thread_id, []).append(capture)
            for log in self._loggers(capture):
                count = self._logger_refs.get(log, 0)
                if count == 0 and self._handler not in log.handlers:
                    # first, so that it redacts a record before any other handler sees it
                    log.handlers = [self._handler, *log.handlers]
                self._logger_refs[log] = count + 1
            if self._stream_refs == 0:
                self._install_streams()
            self._stream_refs += 1

    def detach(self, capture: LogCapture) -> None:
        with self._lock:
            stack = self._by_thread.get(capture.thread_id, [])
            if capture in stack:
                stack.remove(capture)
            if not stack:
                self._by_thread.pop(capture.thread_id, None)
            for log in self._loggers(capture):
                count = self._logger_refs.pop(log, 0)
                if count > 1:
                    self._logger_refs[log] = count - 1
                elif self._handler in log.handlers:
                    log.handlers = [h for h in log.handlers if h is not self._handler]
            self._stream_refs = max(self._stream_refs - 1, 0)
            if self._stream_refs == 0:
                self._restore_streams()

    def _install_streams(self) -> None:
        for name in STREAMS:
            current = getattr(sys, name)
            if isinstance(current, _StreamRouter):  # left over (someone re-set it): reuse
                router = current
            else:
                router = _StreamRouter(name, current)
                setattr(sys, name, router)
            self._streams[name] = router

    def _restore_streams(self) -> None:
        for name, router in self._streams.items():
            if getattr(sys, name) is router:  # else the process replaced it: leave theirs
                setattr(sys, name, router.original)
        self._streams.clear()


_ALWAYS_ROUTED = (logging.getLogger(), logging.getLogger(TASK_LOGGER))
HUB = Hub()
