"""Security (issue "Hardening", part 3): what a worker refuses, what never shows, what stays apart.

Real ``bgproc worker`` / ``beat`` processes (the ``stack`` harness of conftest.py), real
Redis: the default one, and private ``redis-server`` processes (with a password, with
TLS) started and killed by these tests. Messages an attacker could put on a queue are
published raw, as any client of the broker could.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgproc.app import RUN_TASK
from bgproc.installation import Installation
from bgproc.models import Channel, ProcessRun, RunStatus
from bgproc.settings import Settings
from tests.e2e.conftest import Stack, wait_until

RUN_TIMEOUT_S = 30
PICKLE = "application/x-python-serialize"

pytestmark = pytest.mark.faults


@pytest.fixture
def installation(stack: Stack) -> Iterator[Installation]:
    """The stack's installation in this process: to publish messages as any client could."""
    built = Installation(Settings.from_env(stack.env))
    yield built
    built.app.close()
    built.engine.dispose()


class MakeDirectory:
    """Unpickling this creates a directory: the proof that a pickle was (not) loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.path),)


def publish_raw(
    installation: Installation,
    body: bytes,
    content_type: str,
    task: str = RUN_TASK,
    headers: dict[str, Any] | None = None,
) -> str:
    """A Celery (protocol 2) message with ``body`` as is, on the installation's default queue."""
    task_id = str(uuid.uuid4())
    app = installation.app
    message = app.amqp.as_task_v2(task_id, task, args=(), kwargs={})
    with app.connection_for_write() as connection:
        connection.Producer().publish(
            body,
            exchange="",
            routing_key="celery",
            content_type=content_type,
            content_encoding="binary",
            headers={**message.headers, **(headers or {})},
            **message.properties,
        )
    return task_id


def ended(stack: Stack, count: int) -> list[ProcessRun]:
    """The stack's runs, once ``count`` of them have ended."""

    def done() -> list[ProcessRun] | None:
        runs = stack.runs()
        finished = [r for r in runs if r.status not in (RunStatus.queued, RunStatus.processing)]
        return runs if len(finished) >= count else None

    return wait_until(done, RUN_TIMEOUT_S, 0.1, f"{count} runs to end")


def test_a_message_for_any_other_task_is_refused_and_recorded(
    stack: Stack, installation: Installation, tmp_path: Path
) -> None:
    # Given a worker, and messages naming tasks that are not bgproc.run
    worker = stack.worker()
    marker = tmp_path / "system-ran"
    app = installation.app
    system_id = app.send_task("os.system", args=[f"mkdir {marker}"], queue="celery").id
    other_id = app.send_task("bgproc.not_ours", kwargs={"x": 1}, queue="celery").id
    # Then each is refused and recorded as an error run naming the task, with nothing of its
    # arguments, and nothing ran
    runs = {r.task_id: r for r in ended(stack, 2)}
    for task_id, name in ((system_id, "os.system"), (other_id, "bgproc.not_ours")):
        run = runs[task_id]
        assert run.process == name and run.status is RunStatus.error, run.error
        assert "not a registered task" in (run.error or "") and run.params == {}
        assert run.channel is Channel.direct and run.worker
    assert not marker.exists()
    assert "Received unregistered task of type 'os.system'" in worker.text()
    # And the worker goes on running registered processes
    stack.cli("run", "sample.echo", "--wait", "--timeout", str(RUN_TIMEOUT_S))


def test_a_run_of_an_unregistered_process_ends_in_error(
    stack: Stack, installation: Installation
) -> None:
    # Given a worker, and a run row naming a process no worker registers (written straight
    # into the database, as a stale or forged row would be)
    stack.worker()
    run_id = installation.runs.record(
        process="nope.gone", params={}, status=RunStatus.queued, channel=Channel.direct
    )
    installation.app.send_task(RUN_TASK, queue="celery", headers={"bgproc_run_id": run_id})
    # Then the run ends in error, saying why, and nothing ran
    (run,) = ended(stack, 1)
    assert run.status is RunStatus.error
    assert run.error == "nope.gone is not a registered process: refused"
    assert run.started_at is None and run.log is None


def test_pickle_and_other_content_types_are_refused(
    stack: Stack, installation: Installation, tmp_path: Path
) -> None:
    # Given a worker, a queued run, and messages for it in pickle and in a made-up type
    worker = stack.worker()
    queued = installation.runs.record(
        process="sample.echo", params={}, status=RunStatus.queued, channel=Channel.direct
    )
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(((MakeDirectory(marker),), {}, {}))
    headers = {"bgproc_run_id": queued}
    pickled = publish_raw(installation, evil, PICKLE, headers=headers)
    made_up = publish_raw(installation, b"\x00whatever", "application/x-made-up", headers=headers)
    # Then the worker refuses both unread, and records each refusal as an error run
    runs = {r.task_id: r for r in ended(stack, 2)}
    for task_id, content_type in ((pickled, "pickle"), (made_up, "application/x-made-up")):
        run = runs[task_id]
        assert run.process == RUN_TASK and run.status is RunStatus.error, run.error
        assert "ContentDisallowed" in (run.error or "") and content_type in (run.error or "")
    assert worker.text().count("ContentDisallowed") >= 2
    assert not marker.exists()
    # And the run the messages named is left alone; the worker still runs what it should
    assert [r.status for r in stack.runs() if r.id == queued] == [RunStatus.queued]
    stack.cli("run", "sample.echo", "--wait", "--timeout", str(RUN_TIMEOUT_S))
    assert worker.alive()
