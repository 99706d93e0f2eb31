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
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from bgproc.installation import Installation
from bgproc.runtime.app import create_app
from bgproc.settings import RUN_ID_HEADER, RUN_TASK, Settings
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun
from bgproc.store.transitions import NewRun
from tests.e2e.conftest import BROKER, Stack, _sqlite_url, _stack
from tests.integration.cli_harness import Cli
from tests.waiting import wait_until

RUN_TIMEOUT_S = 30
PICKLE = "application/x-python-serialize"
SECURITY_PROCESSES = "tests.e2e.security_processes"
BASE64 = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
# Names Celery, kombu and RedBeat give their keys: one that starts a key name was written
# without the installation's prefix.
UNPREFIXED = ("_kombu", "unacked", "celery", "redbeat")

REDIS_READY_S = 10

pytestmark = pytest.mark.faults

StackMaker = Callable[..., Stack]


@dataclass(frozen=True)
class PrivateRedis:
    """A ``redis-server`` of one test: its client URL (password included) and its password."""

    url: str
    password: str


def binary(name: str) -> str:
    """The path of ``name``, or a skip saying which binary is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificates(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; the CA's path."""
    openssl = binary("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=bgproc test CA")  # fmt: skip
    run("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return directory / "ca.crt"


def start_redis(directory: Path, tls: bool) -> Iterator[PrivateRedis]:
    """A private ``redis-server`` with a password (and TLS only, if ``tls``), killed at the end."""
    server = binary("redis-server")
    directory.mkdir()
    password = f"pw-{uuid.uuid4().hex}"
    port = free_port()
    args = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--requirepass", password]  # fmt: skip
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    if tls:
        ca = make_certificates(directory)
        args += ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no",
                 "--tls-cert-file", str(directory / "server.crt"),
                 "--tls-key-file", str(directory / "server.key"),
                 "--tls-ca-cert-file", str(ca)]  # fmt: skip
        url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_cert_reqs=required" \
            f"&ssl_ca_certs={quote(str(ca))}"  # fmt: skip
    else:
        args += ["--port", str(port)]
    with (directory / "redis.log").open("ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(url)
    try:

        def answers() -> bool:
            assert process.poll() is None, (directory / "redis.log").read_text()
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, REDIS_READY_S, 0.05, "the private redis-server")
        yield PrivateRedis(url, password)
    finally:
        client.close()
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis that wants a password (request it before ``stacks``: it outlives them)."""
    yield from start_redis(tmp_path / "redis-password", tls=False)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis that speaks TLS only, with a password, its certificate from a test CA."""
    yield from start_redis(tmp_path / "redis-tls", tls=True)


@pytest.fixture
def stacks(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StackMaker]:
    """Makes installations (each its own prefix and SQLite file) on a broker; all are stopped
    and their keys deleted at the end."""
    with ExitStack() as cleanup:

        def make(name: str, broker_url: str = BROKER) -> Stack:
            home = tmp_path / name
            home.mkdir()
            made = _stack(home, _sqlite_url(home), request, broker_url)
            cleanup.callback(next, made, None)
            return next(made)

        yield make


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
        NewRun(process="nope.gone", params={}, status=RunStatus.queued, channel=Channel.direct)
    )
    installation.app.send_task(RUN_TASK, queue="celery", headers={"bgproc_run_id": run_id})
    # Then the run ends in error, saying why, and nothing ran
    (run,) = ended(stack, 1)
    assert run.status is RunStatus.error
    assert run.error == "nope.gone is not a registered process: refused"
    assert run.started_at is None and run.log is None


def test_a_fire_whose_row_was_lost_is_made_again_from_its_request(
    stack: Stack, installation: Installation
) -> None:
    """Beat commits a fire's row asynchronously on PostgreSQL: a crash just after may lose
    it, while its message (run id, request id, due time) is already in Redis."""
    # Given a scheduled request (due far ahead) and a fire of it whose row does not exist
    stack.worker()
    request_id = stack.create("sample.echo", "--timing", "later", "--start", "+1d")
    due = datetime(2031, 3, 30, 12, 0, tzinfo=UTC)
    headers = {
        RUN_ID_HEADER: 10**9,
        "bgproc_request_id": request_id,
        "bgproc_scheduled_at": due.isoformat(),
    }
    task_id = installation.app.send_task(RUN_TASK, queue="celery", headers=headers).id
    # Then its run is made again from the request, and runs once
    (run,) = ended(stack, 1)
    assert (run.request_id, run.scheduled_at, run.task_id) == (request_id, due, task_id)
    assert run.status is RunStatus.success and run.attempt == 1, run.error


def test_pickle_and_other_content_types_are_refused(
    stack: Stack, installation: Installation, tmp_path: Path
) -> None:
    # Given a worker, a queued run, and messages for it in pickle and in a made-up type
    worker = stack.worker()
    queued = installation.runs.record(
        NewRun(process="sample.echo", params={}, status=RunStatus.queued, channel=Channel.direct)
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


def runs_end_to_end(stack: Stack) -> list[str]:
    """A worker and a beat run an every-second request and an ad-hoc run; what they printed."""
    worker, beat = stack.worker_and_beat()
    request_id = stack.create(
        "sample.echo", "--timing", "scheduled", "--frequency", "seconds", "--interval", "1"
    )
    adhoc = stack.cli("run", "sample.echo", "--param", "a=1", "--wait", "--timeout", "30")

    def two_fired() -> bool:
        return sum(r.status is RunStatus.success for r in stack.runs(request_id)) >= 2

    wait_until(two_fired, RUN_TIMEOUT_S, 0.1, "two successful runs of the request")
    unscheduled = stack.cli("request", "unschedule", str(request_id))
    live = [stack.cli("monitor", name, "--json") for name in ("workers", "queues")]
    assert any(w["name"] == f"w1@{socket.gethostname()}" for w in live[0].json())
    return [adhoc.out, adhoc.err, unscheduled.out, unscheduled.err, worker.text(), beat.text(),
            *(done.out + done.err for done in live)]  # fmt: skip


def test_redis_with_a_password(
    password_redis: PrivateRedis,
    stacks: StackMaker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an installation on a Redis that wants a password
    stack = stacks("private", password_redis.url)
    # Then worker, beat and the CLI run requests through it, and no output shows the password
    printed = runs_end_to_end(stack)
    assert f"redis://:**@127.0.0.1:{password_redis.url.rsplit(':', 1)[1]}" in printed[4]  # banner
    # And a wrong password is refused in one line that shows neither password
    wrong = password_redis.url.replace(password_redis.password, f"x{password_redis.password}x")
    cli = in_process(stack, monkeypatch, capsys)
    monkeypatch.setenv("BGPROC_BROKER_URL", wrong)
    refused = cli("monitor", "queues")
    assert refused.code == 5 and refused.err.startswith("Error: redis is unreachable at redis://:***@")
    printed += [refused.out, refused.err]
    assert not [text for text in printed if password_redis.password in text]
    # And nothing of the installation went to the default Redis
    assert not redis.Redis.from_url(BROKER).keys(f"{stack.prefix}*")


def test_redis_over_tls(tls_redis: PrivateRedis, stacks: StackMaker) -> None:
    # Given an installation on a Redis that speaks TLS only (rediss://, the CA in the URL)
    stack = stacks("tls", tls_redis.url)
    # Then worker, beat and the CLI run requests through it, and no output shows the password
    printed = runs_end_to_end(stack)
    assert "rediss://:**@127.0.0.1" in printed[4]  # the worker's banner
    assert not [text for text in printed if tls_redis.password in text]
    assert stack.redis_keys(), "nothing reached the TLS Redis"
    # And without the test CA the server's certificate is refused, by the broker connection
    # (kombu alone would not verify it) as by every other client
    unverified = tls_redis.url.split("?", 1)[0]
    app = create_app(Settings(broker_url=unverified, key_prefix=stack.prefix))
    with (
        app.connection_for_write() as connection,
        pytest.raises(Exception, match="certificate verify failed"),
    ):
        connection.ensure_connection(max_retries=1, interval_start=0)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(unverified).ping()


def test_two_installations_on_one_redis_never_see_each_other(stacks: StackMaker) -> None:
    # Given two installations (own prefix, own database) on the same Redis, each with a worker
    # and a beat running an every-second request, and an ad-hoc run each
    shared = redis.Redis.from_url(BROKER, decode_responses=True)
    before = set(shared.scan_iter(count=1000))
    a, b = stacks("a"), stacks("b")
    procs = {name: (stack.worker(name, ready=False), stack.beat(f"beat-{name}", holder=False))
             for name, stack in (("a", a), ("b", b))}  # fmt: skip
    for worker, beat in procs.values():
        worker.wait_log(" ready.")
        beat.wait_log("beat: Acquired lock")
    requests = {}
    for name, stack in (("a", a), ("b", b)):
        requests[name] = stack.create(
            "sample.echo", "--timing", "scheduled", "--frequency", "seconds", "--interval", "1",
            "--param", f"who={name}",
        )  # fmt: skip
        stack.cli("run", "sample.echo", "--param", f"who={name}")

    def both_ran() -> bool:
        return all(
            sum(r.status is RunStatus.success for r in stack.runs(requests[name])) >= 2
            and any(r.status is RunStatus.success for r in stack.runs() if r.request_id is None)
            for name, stack in (("a", a), ("b", b))
        )

    wait_until(both_ran, RUN_TIMEOUT_S, 0.1, "both installations to run their own work")
    for name, stack in (("a", a), ("b", b)):
        stack.cli("request", "unschedule", str(requests[name]))
    # Then each database holds its own runs only, each run by its own worker
    host = socket.gethostname()
    for name, stack in (("a", a), ("b", b)):
        runs = [r for r in stack.runs() if r.status is RunStatus.success]
        assert {r.params["who"] for r in runs} == {name}
        assert {r.worker for r in runs} == {f"{name}@{host}"}
        assert [w["name"] for w in stack.cli("monitor", "workers", "--json").json()] == [
            f"{name}@{host}"
        ]
        assert shared.exists(f"{stack.prefix}redbeat::lock")
    # And every key either wrote is under its own prefix: none appeared bare
    new = set(shared.scan_iter(count=1000)) - before
    bare = [k for k in new if k.startswith(UNPREFIXED)]
    misplaced = [k for k in new if (a.prefix in k or b.prefix in k)
                 and not k.startswith((a.prefix, b.prefix))]  # fmt: skip
    assert not bare and not misplaced, (bare, misplaced)
    assert f"{a.prefix}_kombu.binding.celery" in a.redis_keys()
    assert f"{b.prefix}_kombu.binding.celery" in b.redis_keys()
    shared.close()
