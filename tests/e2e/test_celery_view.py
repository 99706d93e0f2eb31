"""Celery's own tools tell what the monitor tells (issue 20): every run is seen under its
process's name, with its real outcome, by an event receiver like Flower's and by
``celery inspect active``.

Real parts: ``bgproc up -E`` (a worker sending events, with its embedded beat), the
``bgproc`` CLI, ``celery inspect`` as a subprocess, and in this process Celery's own
event ``Receiver`` feeding the ``State`` that Flower keeps, all on the real Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery.events.state import State

from bgproc.runtime.app import create_app
from bgproc.settings import RUN_TASK, Settings
from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import REPO, WORKER_OPTIONS, Stack
from tests.waiting import wait_until

RUN_TIMEOUT_S = 60
EVENT_TIMEOUT_S = 15
TRACEBACK = "Traceback (most recent call last)"


class Events:
    """Celery's event stream of one installation, read as Flower reads it: a ``Receiver``
    on its own thread, feeding a ``State``; every event is kept too."""

    def __init__(self, stack: Stack) -> None:
        self.app = create_app(Settings.from_env(stack.env))
        self.state = State()
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._capture, name="events", daemon=True)

    def _capture(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers={"*": self._on})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append(event)
            self.state.event(event)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=10)
        self.app.close()

    def task(self, task_id: str) -> tuple[str | None, str | None, str | None]:
        """The task's (name, state, exception) as Flower would show them."""
        with self._lock:
            found = self.state.tasks.get(task_id)
            return (found.name, found.state, found.exception) if found else (None, None, None)

    def types(self, task_id: str) -> list[str]:
        """The types of the events about one task, in the order they came."""
        with self._lock:
            return [e["type"] for e in self.seen if e.get("uuid") == task_id]

    def workers(self) -> int:
        with self._lock:
            return len(self.state.workers)


@pytest.fixture
def events(stack: Stack) -> Iterator[Events]:
    watched = Events(stack)
    watched.start()
    yield watched
    watched.stop()


def _launch(stack: Stack, process: str, *params: str) -> ProcessRun:
    args = [a for p in params for a in ("--param", p)]
    out = stack.cli("run", process, *args).out.strip()
    assert out.isdigit(), out
    return _run(stack, int(out))


def _run(stack: Stack, run_id: int) -> ProcessRun:
    (row,) = [r for r in stack.runs() if r.id == run_id]
    return row


def _in_status(stack: Stack, run_id: int, *statuses: RunStatus) -> ProcessRun:
    def reached() -> ProcessRun | None:
        row = _run(stack, run_id)
        return row if row.status in statuses else None

    return wait_until(reached, RUN_TIMEOUT_S, 0.1, f"run {run_id} to be {statuses}")


def _shown(events: Events, run: ProcessRun, state: str) -> tuple[str | None, str | None]:
    """Wait until the events put the run's task in ``state``; its (name, exception)."""
    assert run.task_id is not None

    def reached() -> tuple[str | None, str | None] | None:
        name, found, exception = events.task(run.task_id)
        return (name, exception) if found == state else None

    return wait_until(reached, EVENT_TIMEOUT_S, 0.1, f"task of run {run.id} to be {state}")


def _active(stack: Stack) -> list[dict[str, Any]]:
    """``celery --config celeryconfig inspect active``, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "--config", "celeryconfig", "inspect", "active",
         "--json", "--timeout", "5"],
        cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [task for tasks in json.loads(done.stdout).values() for task in tasks]


def test_flower_and_celery_inspect_see_each_process_and_its_outcome(
    stack: Stack, events: Events
) -> None:
    # Given bgproc up sending events, and a receiver that heard from it
    stack.env["BGPROC_IMPORTS"] = "tests.e2e.view_processes"
    up = stack.spawn("up", "up", "--concurrency", "2", "-n", "up@%h", *WORKER_OPTIONS, "-E")
    up.wait_log(" ready.")
    up.wait_log("beat: Acquired lock")
    wait_until(events.workers, EVENT_TIMEOUT_S, 0.1, "the worker's events to arrive")

    # ad-hoc runs: a success and an error, under their own names
    ok = _launch(stack, "sample.echo", "a=1")
    failed = _launch(stack, "sample.fail", "message=boom")
    assert _in_status(stack, ok.id, RunStatus.success)
    run = _in_status(stack, failed.id, RunStatus.error)
    assert run.error == "RuntimeError: boom" and TRACEBACK in (run.traceback or "")
    assert _shown(events, ok, "SUCCESS") == ("sample.echo", None)
    name, exception = _shown(events, failed, "FAILURE")
    assert name == "sample.fail" and "RuntimeError: boom" in (exception or ""), exception

    # a run killed on request: not a success, and why; `inspect active` named it first
    sleeper = _launch(stack, "sample.sleep", "seconds=60")
    _in_status(stack, sleeper.id, RunStatus.processing)
    active = _active(stack)
    assert [(t["name"], t["type"]) for t in active] == [("sample.sleep", RUN_TASK)], active
    stack.cli("monitor", "kill", str(sleeper.id), "--timeout", "30")
    name, exception = _shown(events, sleeper, "FAILURE")
    assert name == "sample.sleep" and "killed on request" in (exception or ""), exception

    # a skipped run (prevent concurrent): ignored, neither success nor failure
    first = _launch(stack, "view.single")
    _in_status(stack, first.id, RunStatus.processing)
    second = _launch(stack, "view.single")
    assert _in_status(stack, second.id, RunStatus.skipped)
    assert _shown(events, second, "IGNORED")[0] == "view.single"
    stack.cli("monitor", "kill", str(first.id), "--timeout", "30")

    # beat's fires, and a group's steps, are named too: the group as the monitor names it
    stack.cli("group", "create", "pair", "--step", "sample.echo step=1")
    stack.create("--group", "pair", "--timing", "immediate")
    stack.create("sample.echo", "--timing", "immediate", "--param", "from=beat")

    def fired() -> list[ProcessRun] | None:
        runs = [r for r in stack.runs() if r.request_id is not None]
        return runs if len(runs) == 3 and all(r.status is RunStatus.success for r in runs) \
            else None  # fmt: skip

    for run in wait_until(fired, RUN_TIMEOUT_S, 0.1, "the group, its step and the fire to end"):
        assert _shown(events, run, "SUCCESS")[0] == run.process
    assert {r.process for r in fired() or []} == {"group:pair", "sample.echo"}

    # each message was received once and acknowledged: no retry, no redelivery
    every = [ok, failed, sleeper, first, second]
    assert all(events.types(r.task_id or "").count("task-received") == 1 for r in every)
    assert all(_run(stack, r.id).attempt == 1 for r in every)
    wait_until(lambda: stack.cli("monitor", "queues", "--json").json()["unacked"] == 0,
               RUN_TIMEOUT_S, 0.2, "every message acknowledged")  # fmt: skip
    # the worker's log tells each process by name, and the one error with one traceback
    log = up.text()
    assert "Task sample.fail[" in log and f"Task {RUN_TASK}[" not in log
    assert log.count(TRACEBACK) == 1, log
