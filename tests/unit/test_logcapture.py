"""The Process Log capture in one process: what is kept, how it is written, what never breaks.

The end-to-end behaviour with real workers is in tests/e2e/test_process_log.py; these
pin down the details that are cheaper to prove in-process.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from bgproc.registry import Redaction
from bgproc.runtime.logcapture import FLUSH_INTERVAL_S, LogCapture, stamp

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (?P<rest>.*)$")


class Sink:
    """Stands in for ``RunStore.append_log``: keeps every write, can fail on demand."""

    def __init__(self, failures: int = 0) -> None:
        self.writes: list[str] = []
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, run_id: int, text: str) -> None:
        with self.lock:
            if self.failures:
                self.failures -= 1
                raise OSError("database is locked")
            self.writes.append(text)

    @property
    def text(self) -> str:
        return "".join(self.writes)

    def rest(self) -> list[str]:
        """Each entry's first line without its timestamp (continuation lines have none)."""
        lines = self.text.splitlines()
        assert not lines or LINE.match(lines[0]), lines[0]
        matches = [LINE.match(line) for line in lines]
        return [m.group("rest") for m in matches if m]


@pytest.fixture
def ctx_log() -> logging.Logger:
    return logging.getLogger("bgproc.process.unit.capture")


def test_stamp_is_iso_utc_with_milliseconds() -> None:
    assert stamp(1_800_000_000.1234) == "2027-01-15T08:00:00.123+00:00"
    now = time.time()
    assert stamp(now) == datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


def test_records_and_streams_in_order_once(ctx_log: logging.Logger) -> None:
    sink = Sink()
    with LogCapture(1, sink, context_logger=ctx_log):
        ctx_log.info("one")
        logging.getLogger("some.lib").warning("two")
        sys.stdout.write("three ")
        sys.stdout.write("and a half\n\nfour")  # an empty line is a line; so is an unended one
        sys.stderr.write("five\n")
        ctx_log.error("six\nseven")  # continuation lines go as they are, like tracebacks
    assert sink.rest() == [
        "INFO bgproc.process.unit.capture: one",
        "WARNING some.lib: two",
        "STDOUT: three and a half",
        "STDOUT: ",
        "STDOUT: four",
        "STDERR: five",
        "ERROR bgproc.process.unit.capture: six",
    ]
    assert sink.text.endswith(": six\nseven\n")


def test_a_non_propagating_context_logger_is_captured_too(ctx_log: logging.Logger) -> None:
    isolated = logging.getLogger("bgproc.process.unit.isolated")
    isolated.propagate = False
    try:
        sink = Sink()
        with LogCapture(1, sink, context_logger=isolated):
            isolated.warning("kept")
        assert sink.rest() == ["WARNING bgproc.process.unit.isolated: kept"]
    finally:
        isolated.propagate = True


def test_everything_is_put_back_after_the_run(ctx_log: logging.Logger) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    handlers = {
        name: list(logging.getLogger(name).handlers)
        for name in ("", "celery.task", ctx_log.name)
    }
    with LogCapture(1, Sink(), context_logger=ctx_log):
        assert sys.stdout is not stdout
    assert sys.stdout is stdout and sys.stderr is stderr
    for name, before in handlers.items():
        assert logging.getLogger(name).handlers == before


def test_other_threads_are_not_captured(
    ctx_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Sink()

    def elsewhere() -> None:
        print("from another thread")
        ctx_log.warning("not mine")

    with LogCapture(1, sink, context_logger=ctx_log):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        print("mine")
    assert sink.rest() == ["STDOUT: mine"]
    assert "from another thread" in capsys.readouterr().out  # it went where it always went


def test_nested_captures_the_inner_one_wins(ctx_log: logging.Logger) -> None:
    outer, inner = Sink(), Sink()
    with LogCapture(1, outer, context_logger=ctx_log):
        ctx_log.info("group starts")
        with LogCapture(2, inner, context_logger=ctx_log):
            ctx_log.info("child line")
        ctx_log.info("group ends")
    assert outer.rest() == [
        "INFO bgproc.process.unit.capture: group starts",
        "INFO bgproc.process.unit.capture: group ends",
    ]
    assert inner.rest() == ["INFO bgproc.process.unit.capture: child line"]


def test_lines_are_written_a_few_times_a_second_not_once_per_line(
    ctx_log: logging.Logger,
) -> None:
    sink = Sink()
    lines = 150
    begun = time.monotonic()
    with LogCapture(1, sink, context_logger=ctx_log):
        for number in range(lines):
            ctx_log.info("line %d", number)
            time.sleep(0.01)
        written_during_run = len(sink.writes)
    took = time.monotonic() - begun
    assert written_during_run >= 1  # streamed, not only at the end
    assert len(sink.writes) <= took / FLUSH_INTERVAL_S + 2
    assert len(sink.rest()) == lines


def test_a_failing_database_never_breaks_the_run_and_loses_nothing_it_can_retry(
    ctx_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink(failures=1)
    with LogCapture(1, sink, context_logger=ctx_log, flush_interval_s=0.05):
        ctx_log.info("before")
        deadline = time.monotonic() + 5
        while sink.failures and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx_log.info("after")
    assert sink.rest() == [
        "INFO bgproc.process.unit.capture: before",
        "INFO bgproc.process.unit.capture: after",
    ]
    reports = [r for r in caplog.records if r.name == "bgproc.logcapture"]
    assert len(reports) == 1 and "database is locked" in reports[0].getMessage()


def test_the_run_still_sees_its_own_exception(ctx_log: logging.Logger) -> None:
    sink = Sink()
    with pytest.raises(ZeroDivisionError), LogCapture(1, sink, context_logger=ctx_log):
        ctx_log.info("about to divide")
        _ = 1 / 0
    assert sink.rest() == ["INFO bgproc.process.unit.capture: about to divide"]


def test_the_log_is_bounded_and_counts_what_it_left_out(ctx_log: logging.Logger) -> None:
    sink = Sink()
    with LogCapture(1, sink, context_logger=ctx_log, max_chars=5_000):
        for number in range(1, 1001):
            ctx_log.info("line %04d", number)
    lines = sink.text.splitlines()
    kept = lines[:-2]
    assert lines[-2] == (
        "… [log truncated: the log reached 5000 chars; further lines are not stored]"
    )
    counted = re.fullmatch(
        r"… \[log truncated: (\d+) more lines \((\d+) chars\) not stored\]", lines[-1]
    )
    assert counted is not None
    assert len(kept) + int(counted.group(1)) == 1000
    assert len("".join(f"{line}\n" for line in kept)) <= 5_000
    assert int(counted.group(2)) == (1000 - len(kept)) * len(f"{lines[0]}\n")


def test_a_huge_unended_write_is_stored_in_bounded_pieces(ctx_log: logging.Logger) -> None:
    sink = Sink()
    with LogCapture(1, sink, context_logger=ctx_log, max_chars=300_000):
        sys.stdout.write("x" * 200_000)
    pieces = sink.rest()
    assert len(pieces) == 4 and all(p.startswith("STDOUT: x") for p in pieces)
    assert sum(len(p) - len("STDOUT: ") for p in pieces) == 200_000


def test_text_a_database_refuses_is_escaped(ctx_log: logging.Logger) -> None:
    sink = Sink()
    with LogCapture(1, sink, context_logger=ctx_log):
        print("nul\x00 and lone \udcff surrogate")
    assert sink.rest() == ["STDOUT: nul\\x00 and lone \\udcff surrogate"]
    sink.text.encode("utf-8")


def test_a_broken_record_does_not_break_the_run() -> None:
    # A logger of its own: pytest's handlers on root would fail the test on the bad record
    isolated = logging.getLogger("bgproc.process.unit.broken")
    isolated.propagate = False
    sink = Sink()
    try:
        with LogCapture(1, sink, context_logger=isolated):
            isolated.warning("%d apples", "not a number")
            isolated.warning("still logging")
    finally:
        isolated.propagate = True
    rest = sink.rest()
    assert len(rest) == 2 and "unformattable" in rest[0], rest
    assert rest[1] == "WARNING bgproc.process.unit.broken: still logging"


def test_a_soft_time_limit_landing_in_the_capture_reaches_the_process(
    ctx_log: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = LogCapture(1, Sink(), context_logger=ctx_log)

    def interrupted(*_args: object) -> None:
        raise SoftTimeLimitExceeded()  # as Celery's signal handler raises it, anywhere

    monkeypatch.setattr(capture, "add_record", interrupted)
    monkeypatch.setattr(capture, "add_text", interrupted)
    with capture:
        with pytest.raises(SoftTimeLimitExceeded):
            ctx_log.warning("logging when the limit strikes")
        with pytest.raises(SoftTimeLimitExceeded):
            print("printing when the limit strikes")


def test_a_runs_secrets_are_masked_in_the_log_and_on_the_console(
    ctx_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process (or a library) that logs a secret: the Process Log and the worker's console
    (any handler after the capture's, here a plain one on root) show ``***``."""
    console: list[str] = []

    class Console(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.append(logging.Formatter().format(record))

    root = logging.getLogger()
    root.addHandler(handler := Console())
    sink = Sink()
    try:
        with LogCapture(1, sink, context_logger=ctx_log, redact=Redaction(("hunter2",)).text):
            ctx_log.info("token %s", "hunter2")
            logging.getLogger("some.lib").warning("auth=hunter2;")
            print("printed hunter2")
            try:
                raise ValueError("bad token hunter2")
            except ValueError:
                ctx_log.exception("failed")
    finally:
        root.removeHandler(handler)
    shown = "\n".join([sink.text, *console, capsys.readouterr().out])
    assert "hunter2" not in shown
    assert sink.rest() == [
        "INFO bgproc.process.unit.capture: token ***",
        "WARNING some.lib: auth=***;",
        "STDOUT: printed ***",
        "ERROR bgproc.process.unit.capture: failed",
    ]
    assert "ValueError: bad token ***" in sink.text
    assert "ValueError: bad token ***" in console[-1]


def test_without_secrets_records_are_left_as_they_are(ctx_log: logging.Logger) -> None:
    sink = Sink()
    record = ctx_log.makeRecord(ctx_log.name, logging.INFO, __file__, 1, "n=%d", (1,), None)
    with LogCapture(1, sink, context_logger=ctx_log):
        ctx_log.handle(record)
    assert (record.msg, record.args) == ("n=%d", (1,))
    assert sink.rest() == ["INFO bgproc.process.unit.capture: n=1"]
