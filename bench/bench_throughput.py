"""Benchmark: no-op throughput of a monitored bgproc worker against bare Celery, in one run.

Run: .venv/bin/python -m bench.bench_throughput [--tasks 3000] [--rounds 3]   (from the repo
root; needs Redis on 127.0.0.1:6379 and PostgreSQL at BGPROC_TEST_PG_URL). About 5 minutes.

Every set-up is one worker process, prefork with ``--concurrency 2``, the same broker and
task settings (JSON, late acks, prefetch 1, ``--loglevel WARNING``, no mingle, gossip or
heartbeat), its own key prefix, draining a queue that was filled before it started:

- **bare Celery**: ``celery worker`` on ``bench.plain_redbeat_app``, a task that does nothing
  (``bench.plain.idle``) — Celery's own cost per task, the 100 %.
- **bgproc on SQLite / PostgreSQL**: ``bgproc worker`` running the registered process
  ``bench.noop`` through ``bgproc.run``, every run recorded (queued row written before the
  publish, as ``bgproc run`` does; processing, success, duration, worker, log capture).
  The run is counted when its row says ``success``.
- **bgproc on PostgreSQL, read**: the same, with messages that name the run only, so the
  worker reads it before it starts: the path of scheduled runs and redeliveries.

Throughput = tasks / (time the last one was done − time the queue was first seen shorter),
polled every 5 ms from this process: Redis's queue and unacked messages, then (bgproc) the
count of rows that say ``success``, so the poller's own load is the same for every set-up.
Each bgproc set-up runs ``--rounds`` times, every round between two rounds of bare Celery.
Printed: each set-up's best round, and the median of each bgproc round's rate divided by
the mean of its two neighbours', which the target is judged on (see :func:`report`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import func, insert, select

from bench import plain_redbeat_app as plain
from bench.bench_lateness import Processes, bgproc_env, child_env
from bench.machine import REDIS_URL, database, delete_prefix, exit_on_sigterm, machine_line
from bgproc.installation import Installation
from bgproc.services.adhoc import message_headers
from bgproc.settings import RUN_ID_HEADER, RUN_TASK, Settings
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun
from bgproc.store.schema import upgrade

BGPROC_CLI = "import sys; from cli.main import run; sys.argv[0] = 'bgproc'; run()"
WORKER_OPTIONS = [
    "--concurrency", "2", "--pool", "prefork", "--loglevel", "WARNING",
    "--without-mingle", "--without-gossip", "--without-heartbeat",
]  # fmt: skip
TARGET_RATIO = 0.80
BARE = "bare Celery"
QUEUE = "celery"
POLL_S = 0.005
DRAIN_TIMEOUT_S = 300.0
# (backend, whether the message carries the run's ticket): ad-hoc runs as `bgproc run`
# sends them, and the path of scheduled runs and redeliveries (the worker reads the row)
SETUPS = (("sqlite", True), ("postgresql", True), ("postgresql", False))


@dataclass(frozen=True)
class Round:
    label: str
    tasks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


@contextmanager
def worker(argv: list[str], env: dict[str, str], folder: Path, name: str) -> Iterator[None]:
    """A worker process, stopped (warm, then killed) however the round ends."""
    processes = Processes()
    log = folder / f"{name}.log"
    try:
        processes.spawn(argv, env, folder, log)
        yield
        processes.check_alive([log])
    finally:
        processes.stop_all()


def drain(client: redis.Redis, queue_key: str, tasks: int, done: Callable[[], bool]) -> float:
    """Seconds from the first message taken off ``queue_key`` until ``done()``."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while client.llen(queue_key) >= tasks:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker never took a message")
        time.sleep(POLL_S / 5)
    began = time.perf_counter()
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not drain the queue in time")
        time.sleep(POLL_S)
    return time.perf_counter() - began


def drained(client: redis.Redis, prefix: str) -> bool:
    """No message left in the queue, none taken and not yet acknowledged."""
    return client.llen(prefix + QUEUE) == 0 and client.hlen(prefix + "unacked") == 0


def bare_round(client: redis.Redis, folder: Path, tasks: int) -> Round:
    prefix = f"bench-throughput-bare-{uuid.uuid4().hex[:8]}:"
    app = plain.make_app(prefix, REDIS_URL)
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(tasks):
                app.send_task(plain.IDLE_TASK, queue=QUEUE, producer=producer)
        env = child_env({plain.PREFIX_ENV: prefix, plain.REDIS_URL_ENV: REDIS_URL})
        argv = [sys.executable, "-m", "celery", "-A", "bench.plain_redbeat_app", "worker",
                "-n", f"bench-bare-{uuid.uuid4().hex[:6]}@%h", *WORKER_OPTIONS]  # fmt: skip
        with worker(argv, env, folder, "bare"):
            seconds = drain(client, prefix + QUEUE, tasks, lambda: drained(client, prefix))
        return Round(BARE, tasks, seconds)
    finally:
        delete_prefix(client, prefix)


def bgproc_round(
    client: redis.Redis, folder: Path, tasks: int, backend: str, carried: bool
) -> Round:
    prefix = f"bench-throughput-{backend}-{uuid.uuid4().hex[:8]}:"
    with database(backend) as url:
        settings = Settings(
            broker_url=REDIS_URL,
            database_url=url,
            key_prefix=prefix,
            timezone="UTC",
            imports=("tasks", "bench.noop_processes"),
        )
        installation = Installation(settings)
        try:
            upgrade(installation.engine)
            queue(installation, tasks, carried)
            env = bgproc_env(url, prefix, "bench.noop_processes")
            node = f"bench-{backend}-{uuid.uuid4().hex[:6]}@%h"
            argv = [sys.executable, "-c", BGPROC_CLI, "worker", "-Q", QUEUE, "-n", node,
                    *WORKER_OPTIONS]  # fmt: skip
            succeeded = (
                select(func.count())
                .select_from(ProcessRun)
                .where(ProcessRun.status == RunStatus.success)
            )

            def done() -> bool:
                """Polled like bare Celery's (Redis only) until the queue is drained, so the
                poller costs both the same CPU; then until every row says success."""
                if not drained(client, prefix):
                    return False
                with installation.engine.connect() as connection:
                    return connection.execute(succeeded).scalar_one() >= tasks

            with worker(argv, env, folder, backend):
                seconds = drain(client, prefix + QUEUE, tasks, done)
            return Round(f"bgproc {backend}" + ("" if carried else " read"), tasks, seconds)
        finally:
            installation.engine.dispose()
            delete_prefix(client, prefix)


def queue(installation: Installation, tasks: int, carried: bool) -> None:
    """``tasks`` ad-hoc runs of ``bench.noop`` as ``bgproc run`` queues them, in bulk; not
    ``carried``: their messages name the run only, so the worker reads it (as it does for
    a scheduled run, or a redelivered message)."""
    now = datetime.now(UTC)
    rows = [
        {
            "process": "bench.noop",
            "params": {},
            "status": RunStatus.queued,
            "channel": Channel.direct,
            "scheduled_at": now,
            "queued_at": now,
            "task_id": str(uuid.uuid4()),
        }
        for _ in range(tasks)
    ]
    with installation.engine.begin() as connection:
        ids = connection.execute(
            insert(ProcessRun).returning(ProcessRun.id, sort_by_parameter_order=True), rows
        ).scalars()
        pairs = list(zip(ids, (row["task_id"] for row in rows), strict=True))
    app, spec = installation.app, installation.registry.get("bench.noop")
    key = installation.runs.ticket_key
    with app.producer_or_acquire() as producer:
        for run_id, task_id in pairs:
            headers = message_headers(spec, run_id, {}, key) if carried else {RUN_ID_HEADER: run_id}
            app.send_task(
                RUN_TASK,
                task_id=task_id,
                queue=QUEUE,
                shadow=spec.name,  # as bgproc run and beat publish
                headers=headers,
                producer=producer,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks drained per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per bgproc set-up")
    args = parser.parse_args()
    exit_on_sigterm()
    client = redis.Redis.from_url(REDIS_URL)
    print("== bench_throughput: no-op tasks drained by one worker (prefork, concurrency 2)")
    print(machine_line(client))
    print(
        f"{args.tasks} tasks per round, {args.rounds} rounds of each bgproc set-up, "
        "each between two rounds of bare Celery"
    )
    rates: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}

    def measured(result: Round) -> Round:
        rates.setdefault(result.label, []).append(result.rate)
        print(f"  round: {result.label:22s} {result.rate:8.0f} tasks/s")
        return result

    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as name:
        folder = Path(name)
        before = measured(bare_round(client, folder, args.tasks))
        for _ in range(args.rounds):
            for backend, carried in SETUPS:
                monitored = measured(bgproc_round(client, folder, args.tasks, backend, carried))
                after = measured(bare_round(client, folder, args.tasks))
                bare_rate = (before.rate + after.rate) / 2
                ratios.setdefault(monitored.label, []).append(monitored.rate / bare_rate)
                before = after
    report(rates, ratios)
    with suppress(Exception):
        client.close()


def report(rates: dict[str, list[float]], ratios: dict[str, list[float]]) -> None:
    """Each set-up's best round, and the verdict on the median of its ratios to the bare
    rounds just before and after it. The machine's speed drifts (other tenants), so the
    ratio to its neighbours is steadier than one of two bests taken minutes apart, and
    their mean cancels a steady drift."""
    bare = max(rates[BARE])
    for label, measured in rates.items():
        line = f"{label:22s} best {max(measured):6.0f} tasks/s"
        if label in ratios:
            paired = statistics.median(ratios[label])
            verdict = "PASS" if paired >= TARGET_RATIO else "FAIL"
            line += (
                f"   best/best {max(measured) / bare:6.1%}   median ratio to its neighbours "
                f"{paired:6.1%} (each: {', '.join(f'{r:.0%}' for r in ratios[label])})"
                f"   (target >= {TARGET_RATIO:.0%}: {verdict})"
            )
        print(line)


if __name__ == "__main__":
    main()
