"""``bgproc monitor watch`` into a pipe or a file: a plain snapshot per refresh, as it comes.

The real ``bgproc`` runs in a subprocess (the e2e :class:`Stack`: a SQLite file and a Redis
key prefix of the test's own) with its stdout a pipe, so it is not a terminal.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BGPROC, Stack, _sqlite_url, _stack
from tests.waiting import wait_until

SNAPSHOT_TITLE = "Latest runs"  # the last table of a snapshot


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    yield from _stack(tmp_path, _sqlite_url(tmp_path), request)


def test_watch_prints_one_snapshot_per_refresh(stack: Stack) -> None:
    done = stack.cli("monitor", "watch", "--interval", "1", "--count", "2")
    assert done.out.count(SNAPSHOT_TITLE) == 2, done.out
    assert done.out.count("Workers") == 2 and done.out.count("Queues") == 2


def test_watch_shows_its_first_snapshot_at_once(stack: Stack) -> None:
    # Given a watch with no end, its output a pipe (and Python's own buffering on)
    env = {k: v for k, v in stack.env.items() if k != "PYTHONUNBUFFERED"}
    watch = subprocess.Popen(
        [*BGPROC, "monitor", "watch"], cwd=stack.tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Then its first snapshot arrives while it still runs, not when it ends
        wait_until(lambda: any(SNAPSHOT_TITLE in line for line in lines), 30, 0.1,
                   "the first snapshot")  # fmt: skip
        assert watch.poll() is None
    finally:
        watch.send_signal(signal.SIGINT)  # Ctrl-C ends a watch
        assert watch.wait(timeout=15) == 130
        reader.join(5)
