"""The Process Log capture (design §4): what one run writes, stored in order while it runs.

A :class:`LogCapture` is active around one run, in the thread that runs it. It collects
the ``logging`` records and the ``sys.stdout`` / ``sys.stderr`` writes of that thread,
which :mod:`bgproc.runtime.logrouting` (the process-wide handler and streams) hands it,
and has them written by :mod:`bgproc.runtime.logflusher` (the process's one writer
thread). This module is what each run owns: its lines, their bound, their order.

Each entry is one line, ``2027-01-01T10:00:00.123+00:00 LEVEL logger: message``
(``STDOUT: text`` / ``STDERR: text`` for the streams), appended to the run's ``log``
column by the process's flusher thread every ``FLUSH_INTERVAL_S`` and once more at the
end: a few database writes per second, never one per line, and ``monitor log --follow``
sees the lines as they come. At most ``MAX_LOG_CHARS`` are stored per run (and so at
most that is ever held in memory); beyond it a marker line says so, and a last one counts
what was left out. Nothing here may break a run: every failure is swallowed and reported once to
the worker's own log.

A capture given ``redact`` (the run's secret values, :class:`~bgproc.registry.Redaction`)
passes what it stores through it, and also what the run's thread sends on to the worker's
console: its records are rewritten (the routing handler comes first in each logger) and its
stream writes are redacted, so a process that logs a secret shows ``***`` everywhere.

Not captured: output that bypasses Python's streams (child subprocesses, C libraries
writing to file descriptors 1/2), records of other threads the process starts, and
records of non-propagating loggers other than the root, ``celery.task`` and the run's
context logger.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from bgproc.runtime.logflusher import FLUSHER
from bgproc.runtime.logrouting import HUB, INTERRUPTS, STREAMS, quietly

MAX_LOG_CHARS = 1_000_000  # per run: a log is for reading; more is noise, and memory
FLUSH_INTERVAL_S = 0.5  # --follow latency vs. database writes (at most ~2 per second per run)
MAX_PARTIAL_CHARS = 65_536  # a stream "line" without a newline is stored in pieces this long

Sink = Callable[[int, str], None]  # RunStore.append_log: (run_id, text)
Redact = Callable[[str], str]  # the text with the run's secrets masked

internal = logging.getLogger("bgproc.logcapture")
_FORMATTER = logging.Formatter()


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def stamp(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds: sortable, unambiguous, what --json shows too."""
    whole = math.floor(epoch)
    micros = round((epoch - whole) * 1_000_000)  # rounded as datetime.fromtimestamp does
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    millis = micros // 1000
    cached = _second  # one list, replaced whole: safe to read from any thread
    if cached[0] != whole:
        cached = [whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")]
        globals()["_second"] = cached
    return f"{cached[1]}.{millis:03d}+00:00"


def storable(text: str) -> str:
    """Text any database takes: PostgreSQL refuses NUL, both refuse lone surrogates."""
    text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _record_text(record: logging.LogRecord) -> str:
    """A record as ``LEVEL logger: message`` (with its traceback), never raising."""
    try:
        message = record.getMessage()
    except INTERRUPTS:
        raise
    except Exception:  # a bad format string must not lose the record, nor break the run
        message = f"{record.msg!r} % {record.args!r} (unformattable)"
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    if record.stack_info:
        message = f"{message}\n{record.stack_info}"
    return f"{record.levelname} {record.name}: {message}"


class LogCapture:
    """Captures the Process Log of one run, in the thread that runs it, while active."""

    def __init__(
        self,
        run_id: int,
        sink: Sink,
        context_logger: logging.Logger | None = None,
        *,
        max_chars: int = MAX_LOG_CHARS,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        redact: Redact | None = None,
    ) -> None:
        self.run_id = run_id
        self.sink = sink
        self.redact = redact
        self.context_logger = context_logger
        self.max_chars = max_chars
        self.flush_interval_s = flush_interval_s
        self.thread_id = 0
        self.stored_chars = 0  # accepted for storage (written or pending)
        self.dropped_lines = 0
        self.dropped_chars = 0
        self.truncated = False
        self._lock = threading.Lock()  # entries and counters
        self._write_lock = threading.Lock()  # one writer at a time, so appends keep their order
        self._pending: list[str] = []
        self._partial: dict[str, list[str]] = {name: [] for name in STREAMS}
        self._partial_chars: dict[str, int] = dict.fromkeys(STREAMS, 0)
        self._partial_at: dict[str, float] = dict.fromkeys(STREAMS, 0.0)
        self._partial_open = False  # some stream has an unfinished line
        self._recent: deque[logging.LogRecord] = deque(maxlen=4)  # one record, many loggers
        self._flushed_by_thread = False  # registered with the process's flusher
        self.due = 0.0  # next periodic flush (monotonic), kept by the flusher
        self._reported = False
        self._active = False

    # -- lifetime ---------------------------------------------------------------------

    def __enter__(self) -> LogCapture:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Capture what the calling thread emits from now on (flushed from its first line on)."""
        self.thread_id = threading.get_ident()
        try:
            if self.context_logger is not None:
                _enable_info(self.context_logger)
            HUB.attach(self)
            self._active = True
        except Exception as error:
            self.report_failure("start", error)

    def stop(self) -> None:
        """Stop capturing, then store everything still pending (the end marker included)."""
        try:
            if self._active:
                self._active = False
                HUB.detach(self)
        except Exception as error:
            self.report_failure("stop", error)
        try:
            with self._lock:
                self._end_partials()
                if self.truncated:
                    self._pending.append(
                        f"… [log truncated: {self.dropped_lines} more lines "
                        f"({self.dropped_chars} chars) not stored]\n"
                    )
            if self._flushed_by_thread:
                FLUSHER.remove(self)
        except Exception as error:
            self.report_failure("stop", error)
        self.flush()  # after any write of the flusher (the write lock), so the order holds

    # -- what comes in ----------------------------------------------------------------

    def add_record(self, record: logging.LogRecord) -> None:
        """A ``logging`` record of the run's thread (once, whichever loggers it passed)."""
        if record in self._recent:  # LogRecord compares by identity
            return
        self._recent.append(record)
        line = f"{stamp(record.created)} {_record_text(record)}\n"
        with self._lock:
            if self._partial_open:
                self._end_partials()
            self._accept(line)

    def add_text(self, stream: str, data: str) -> None:
        """A write to ``sys.stdout`` or ``sys.stderr``: stored line by line."""
        now = time.time()
        with self._lock:
            for other in STREAMS:
                if other != stream:
                    self._end_partial(other)
            pieces = data.split("\n")
            for piece in pieces[:-1]:  # each ends a line
                self._extend_partial(stream, piece, now)
                self._end_partial(stream)
            if pieces[-1]:
                self._extend_partial(stream, pieces[-1], now)

    def _extend_partial(self, stream: str, piece: str, now: float) -> None:
        if not piece:
            if not self._partial[stream]:
                self._partial_at[stream] = now
            self._partial[stream].append("")  # an empty line is a line
            self._partial_open = True
            return
        while piece:
            room = MAX_PARTIAL_CHARS - self._partial_chars[stream]
            if not self._partial[stream]:
                self._partial_at[stream] = now
            self._partial[stream].append(piece[:room])
            self._partial_open = True
            self._partial_chars[stream] += len(piece[:room])
            piece = piece[room:]
            if piece or self._partial_chars[stream] >= MAX_PARTIAL_CHARS:
                self._end_partial(stream)

    def _end_partial(self, stream: str) -> None:
        parts = self._partial[stream]
        if not parts:
            return
        text = "".join(parts)
        parts.clear()
        self._partial_chars[stream] = 0
        self._accept(f"{stamp(self._partial_at[stream])} {stream.upper()}: {text}\n")

    def _end_partials(self) -> None:
        for stream in STREAMS:
            self._end_partial(stream)
        self._partial_open = False

    def _accept(self, line: str) -> None:
        """Keep ``line`` for storage, or count it once the bound is reached (lock held)."""
        if self.truncated:
            self.dropped_lines += 1
            self.dropped_chars += len(line)
            return
        if self.stored_chars + len(line) > self.max_chars:
            self.truncated = True
            self.dropped_lines = 1
            self.dropped_chars = len(line)
            self._pending.append(
                f"… [log truncated: the log reached {self.max_chars} chars; "
                "further lines are not stored]\n"
            )
            return
        self.stored_chars += len(line)
        self._pending.append(line)
        if not self._flushed_by_thread and self._active:
            self._flushed_by_thread = True  # from the first line on: a silent run costs nothing
            try:
                FLUSHER.add(self)
            except Exception as error:  # no thread (resource limits): stored at the end only
                self.report_failure("flusher", error)

    # -- what goes out ----------------------------------------------------------------

    def flush(self) -> None:
        """Append what is pending to the run's log in one write; kept for a retry on failure."""
        with self._write_lock:
            with self._lock:
                if not self._pending:
                    return
                text = "".join(self._pending)
                self._pending.clear()
            try:
                self.sink(self.run_id, storable(self.redact(text) if self.redact else text))
            except Exception as error:
                with self._lock:
                    self._pending.insert(0, text)
                self.report_failure("write", error)

    def report_failure(self, what: str, error: BaseException) -> None:
        """Tell the worker's own log, once per run, that the capture failed (never raise)."""
        if self._reported:
            return
        self._reported = True
        with quietly(), suppress(Exception):
            internal.warning(
                "Process Log of run %s: %s failed (%s: %s); the run goes on",
                self.run_id,
                what,
                type(error).__name__,
                error,
            )


def _enable_info(log: logging.Logger) -> None:
    """``ctx.log.info`` goes to the Process Log (design §1) even under a quieter root level."""
    if log.getEffectiveLevel() > logging.INFO:
        logging.getLogger("bgproc.process").setLevel(logging.INFO)
        if log.getEffectiveLevel() > logging.INFO and log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
