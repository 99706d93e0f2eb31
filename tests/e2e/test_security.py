"""Security (issue "Hardening", part 3): what a worker refuses, what never shows, what stays apart.

Real ``bgproc worker`` / ``beat`` processes (the ``stack`` harness of conftest.py), real
Redis: the default one, and private ``redis-server`` processes (with a password, with
TLS) started and killed by these tests. Messages an attacker could put on a queue are
published raw, as any client of the broker could.
"""

from __future__ import annotations

import base64
import binascii
import os
import pickle
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bgproc.app import RUN_TASK
from bgproc.installation import Installation
from bgproc.models import Channel, ProcessRun, RunStatus
from bgproc.settings import Settings
from tests.e2e.conftest import Stack, wait_until
from tests.integration.cli_harness import Cli

RUN_TIMEOUT_S = 30
PICKLE = "application/x-python-serialize"
SECURITY_PROCESSES = "tests.e2e.security_processes"
BASE64 = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")

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


def in_process(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    """The stack's ``bgproc`` through the same entry point, in this process: many commands
    cost no start-up each."""
    for name, value in stack.env.items():
        if name.startswith("BGPROC_"):
            monkeypatch.setenv(name, value)
    return Cli(capsys)


def redis_text(client: redis.Redis, prefix: str) -> str:
    """Every key under ``prefix`` with its whole value, and every base64 token in them decoded
    (kombu's message bodies): all that someone reading this Redis could learn."""
    parts: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "hash":
            values = [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            values = list(client.smembers(key) if kind == "set" else client.zrange(key, 0, -1))
        else:
            values = [kind.encode()]
        parts += [key, *values]
    for token in BASE64.findall(b"\n".join(parts)):
        try:
            parts.append(base64.b64decode(token, validate=True))
        except (binascii.Error, ValueError):
            continue
    return b"\n".join(parts).decode("utf-8", "replace")


def test_secret_parameters_never_show_in_clear(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis (entries, queues, unacked), every CLI output, worker and beat logs, the Process
    Log, the error, traceback and result: a process that lets its secret out included."""
    secret = f"s3cret-{uuid.uuid4().hex}"
    stack.env["BGPROC_IMPORTS"] = SECURITY_PROCESSES
    raw = redis.Redis.from_url(stack.env["BGPROC_BROKER_URL"])
    seen: list[str] = []
    # Given a beat, an every-second request and an ad-hoc run, all queued before any worker
    beat = stack.beat()
    created = stack.cli(
        "request", "create", "security.leaky", "--timing", "scheduled", "--frequency", "seconds",
        "--interval", "1", "--param", f"token={secret}", "--json",
    )
    request_id = created.json()["id"]
    adhoc = stack.cli("run", "security.leaky", "--param", f"token={secret}", "--param", "fail=1")
    queue = f"{stack.prefix}celery"
    wait_until(lambda: raw.llen(queue) >= 2, RUN_TIMEOUT_S, 0.1, "two messages waiting")
    waiting = redis_text(raw, stack.prefix)
    assert "bgproc_run_id" in waiting and "callbacks" in waiting  # bodies were decoded too
    assert f"redbeat:request:{request_id}" in waiting
    seen += [created.out, created.err, adhoc.out, adhoc.err, waiting]
    # When a worker runs them (Redis read while it does: unacked messages, leases)
    worker = stack.worker()

    def runs_done() -> bool:
        seen.append(redis_text(raw, stack.prefix))
        runs = stack.runs()
        return sum(r.status is RunStatus.success for r in runs) >= 2 and any(
            r.status is RunStatus.error for r in runs
        )

    wait_until(runs_done, RUN_TIMEOUT_S, 0.2, "two scheduled runs and the failed ad-hoc one")
    stack.cli("request", "unschedule", str(request_id))
    runs = [r for r in stack.runs() if r.status in (RunStatus.success, RunStatus.error)]
    # Then every output shows the secret as *** at most
    cli = in_process(stack, monkeypatch, capsys)
    commands = [
        ("monitor", "list"), ("monitor", "list", "--json"), ("request", "list", "--json"),
        ("request", "list"), ("request", "show", str(request_id)),
        ("request", "show", str(request_id), "--json"),
    ]
    for run in runs:
        commands += [("monitor", "show", str(run.id)), ("monitor", "show", str(run.id), "--json"),
                     ("monitor", "log", str(run.id))]  # fmt: skip
    for command in commands:
        done = cli.ok(*command)
        seen += [done.out, done.err]
    for run in runs:
        stored = [run.log, run.error, run.traceback, str(run.result)]
        seen += [text or "" for text in stored]
        assert "token is ***" in (run.log or "") and "Bearer ***" in (run.log or ""), run.log
        assert "printed ***" in (run.log or "") and "task logger ***" in (run.log or "")
        if run.status is RunStatus.error:
            assert run.error == "ValueError: rejected token ***"
            assert "rejected token ***" in (run.traceback or "")
        else:
            assert run.result == {"echo": "***"}
    seen += [redis_text(raw, stack.prefix), worker.text(), beat.text()]
    assert "token is ***" in worker.text()  # the console shows what the process logged, masked
    leaks = [text for text in seen if secret in text]
    assert not leaks, leaks[0]
    raw.close()
