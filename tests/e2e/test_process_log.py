"""The Process Log (design §4) as real workers store it: every source, in order, bounded, live.

Each test has its own Redis prefix and database (the ``stack`` fixtures of conftest.py)
and starts real ``bgproc worker`` processes, on the prefork pool and on the threads pool.
The processes of these tests live in ``tests/e2e/log_processes.py``, registered in the
workers and the CLI through ``BGPROC_IMPORTS``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from bgproc.installation import Installation
from bgproc.runtime.logcapture import MAX_LOG_CHARS
from bgproc.services.adhoc import launch
from bgproc.settings import Settings
from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import WORKER_OPTIONS, Proc, Stack
from tests.waiting import wait_until

IMPORTS = "tests.e2e.log_processes"
RUN_TIMEOUT_S = 60
SPAM_LINES = 200_000
SPAM_TIMEOUT_S = 240  # 200,000 records through the worker's console too, on a loaded machine
MAX_WORKER_PEAK_RSS_KB = 400_000  # a pool child stays far below this while storing ≤ 1 MB
LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00) "
    r"(?P<level>[A-Z]+)(?: (?P<logger>[^:]+))?: (?P<message>.*)$"
)
TRUNCATED = re.compile(r"^… \[log truncated: (\d+) more lines \((\d+) chars\) not stored\]$")


def _use_test_processes(stack: Stack) -> None:
    """Workers and the CLI of ``stack`` register the processes of these tests."""
    stack.env["BGPROC_IMPORTS"] = IMPORTS


def _worker(stack: Stack, pool: str, name: str = "w1") -> Proc:
    """``bgproc worker`` on ``pool`` (prefork: 2 children, threads: 4 threads), once ready."""
    concurrency = "2" if pool == "prefork" else "4"
    proc = stack.spawn(
        name, "worker", "--pool", pool, "--concurrency", concurrency, "-n", f"{name}@%h",
        *WORKER_OPTIONS,
    )
    proc.wait_log(" ready.")
    return proc


@pytest.fixture
def installation(stack: Stack) -> Iterator[Installation]:
    """The stack's installation in this process, to launch runs without a CLI per run."""
    _use_test_processes(stack)
    built = Installation(Settings.from_env(stack.env))
    yield built
    built.app.close()
    built.engine.dispose()


def _run(stack: Stack, run_id: int) -> ProcessRun:
    (row,) = [r for r in stack.runs() if r.id == run_id]
    return row


def _finished(stack: Stack, run_id: int, timeout_s: float = RUN_TIMEOUT_S) -> ProcessRun:
    def done() -> ProcessRun | None:
        row = _run(stack, run_id)
        return row if row.status not in (RunStatus.queued, RunStatus.processing) else None

    return wait_until(done, timeout_s, 0.1, f"run {run_id} to finish")


def _entries(log: str | None) -> list[dict[str, str]]:
    """The log's lines, parsed; every line must be a timestamped entry."""
    lines = (log or "").splitlines()
    parsed = [LINE.match(line) for line in lines]
    bad = [line for line, match in zip(lines, parsed, strict=True) if match is None]
    assert not bad, f"lines without a timestamp and level: {bad[:3]}"
    return [match.groupdict() for match in parsed if match is not None]


def _expected(marker: str, rounds: int, process: str = "logtest.mixed") -> list[tuple[str, ...]]:
    """(level, logger, message) of each line ``logtest.mixed`` writes, in order."""
    expected: list[tuple[str, ...]] = []
    for n in range(rounds):
        expected += [
            ("INFO", f"bgproc.process.{process}", f"{marker} ctx {n}"),
            ("WARNING", "some.lib", f"{marker} lib {n}"),
            ("STDOUT", "", f"{marker} print {n}"),
            ("STDERR", "", f"{marker} stderr {n}"),
            ("INFO", "logtest.task", f"{marker} task {n}"),
        ]
    return expected


def _observed(entries: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [(e["level"], e["logger"] or "", e["message"]) for e in entries]


# -- every source, in order, once -----------------------------------------------------------


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_the_log_holds_every_source_in_order_once(stack: Stack, pool: str) -> None:
    _use_test_processes(stack)
    _worker(stack, pool)
    out = stack.cli("run", "logtest.mixed", "--param", "marker=M1", "--param", "rounds=3")
    run = _finished(stack, int(out.out))
    assert run.status is RunStatus.success, run.error
    entries = _entries(run.log)
    assert _observed(entries) == _expected("M1", 3), run.log
    stamps = [datetime.fromisoformat(e["at"]) for e in entries]
    assert stamps == sorted(stamps)
    assert run.started_at is not None and run.ended_at is not None
    slack = timedelta(seconds=1)  # the run's times are taken around the function call
    assert run.started_at - slack <= stamps[0] and stamps[-1] <= run.ended_at + slack


def test_the_log_on_both_databases_and_a_failure_says_why(any_stack: Stack) -> None:
    stack = any_stack
    _use_test_processes(stack)
    _worker(stack, "prefork")
    ok = int(stack.cli("run", "logtest.mixed", "--param", "marker=PG").out)
    failed = int(stack.cli("run", "sample.fail", "--param", "message=on purpose").out)
    run = _finished(stack, ok)
    assert run.status is RunStatus.success, run.error
    assert _observed(_entries(run.log)) == _expected("PG", 1), run.log
    # A failure ends the log with one line saying why (the traceback has its own field)
    bad = _finished(stack, failed)
    assert bad.status is RunStatus.error
    assert _observed(_entries(bad.log)) == [
        ("INFO", "bgproc.process.sample.fail", "about to fail"),
        ("ERROR", "bgproc.runner", "run failed: RuntimeError: on purpose"),
    ], bad.log


# -- concurrent runs on a threads pool keep their own lines -------------------------------


def test_concurrent_runs_on_a_threads_pool_keep_their_own_lines(
    stack: Stack, installation: Installation
) -> None:
    _worker(stack, "threads")
    markers = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]
    params = {"rounds": "10", "pause": "0.1"}
    parts = (installation.registry, installation.runs, installation.app)
    run_ids = {m: launch(*parts, "logtest.mixed", {"marker": m, **params}) for m in markers}
    runs = {m: _finished(stack, run_id) for m, run_id in run_ids.items()}
    for marker, run in runs.items():
        assert run.status is RunStatus.success, run.error
        assert _observed(_entries(run.log)) == _expected(marker, 10), run.log
    # They did run at the same time (else this test proves nothing)
    starts = [r.started_at for r in runs.values() if r.started_at is not None]
    ends = [r.ended_at for r in runs.values() if r.ended_at is not None]
    assert len(starts) == len(ends) == 4
    assert max(starts) < min(ends), "the four runs did not overlap"


# -- bounded -------------------------------------------------------------------------------


def _pool_children(worker: Proc) -> list[int]:
    """The pids of a prefork worker's pool children."""
    path = f"/proc/{worker.pid}/task/{worker.pid}/children"
    with open(path) as listing:
        return [int(pid) for pid in listing.read().split()]


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.slow
def test_a_huge_log_is_bounded_with_a_truncation_marker(stack: Stack) -> None:
    worker = _worker(stack, "prefork")
    begun = time.monotonic()
    run_id = int(stack.cli("run", "sample.spam", "--param", f"lines={SPAM_LINES}").out)
    run = _finished(stack, run_id, SPAM_TIMEOUT_S)
    took = time.monotonic() - begun
    assert run.status is RunStatus.success, run.error
    log = run.log or ""
    lines = log.splitlines()
    # Bounded: at most the bound, plus the two marker lines
    assert MAX_LOG_CHARS - 200 < len(log) <= MAX_LOG_CHARS + 300
    assert lines[-2].startswith("… [log truncated: the log reached")
    counted = TRUNCATED.match(lines[-1])
    assert counted is not None, lines[-1]
    # Nothing is lost silently: stored lines + counted lines = every line written
    stored = _entries("\n".join(lines[:-2]))
    first = [e["message"] for e in stored[:2]]
    assert first == [f"line 1 of {SPAM_LINES}", f"line 2 of {SPAM_LINES}"]
    assert stored[-1]["message"] == f"line {len(stored)} of {SPAM_LINES}"
    assert len(stored) + int(counted.group(1)) == SPAM_LINES
    peak = max(_peak_rss_kb(pid) for pid in _pool_children(worker))
    assert peak < MAX_WORKER_PEAK_RSS_KB
    print(
        f"\nspam {SPAM_LINES} lines: run {run.duration_ms} ms ({took:.1f} s end to end), "
        f"stored {len(log)} chars in {len(stored)} lines, {counted.group(1)} lines "
        f"({counted.group(2)} chars) not stored; pool child peak RSS {peak // 1024} MB"
    )


# -- written while the run goes --------------------------------------------------------------


def test_the_log_is_readable_while_the_run_goes(stack: Stack) -> None:
    _worker(stack, "prefork")
    run_id = int(stack.cli("run", "sample.sleep", "--param", "seconds=4").out)

    def first_second_stored() -> ProcessRun | None:
        row = _run(stack, run_id)
        if "slept 1 s" in (row.log or ""):
            return row
        assert row.status in (RunStatus.queued, RunStatus.processing), (
            f"run ended ({row.status}) before its first line was read"
        )
        return None

    early = wait_until(first_second_stored, RUN_TIMEOUT_S, 0.05, "the first line of the run")
    assert early.status is RunStatus.processing and early.ended_at is None
    assert "slept 4 s" not in (early.log or "")
    run = _finished(stack, run_id)
    assert run.status is RunStatus.success, run.error
    assert [e["message"] for e in _entries(run.log)] == [f"slept {n} s" for n in (1, 2, 3, 4)]
