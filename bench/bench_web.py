"""Benchmark: the web windows over 1,000,000 stored runs, and worker throughput under live logs.

Run: .venv/bin/python -m bench.bench_web [--runs 1000000] [--repeat 5] [--backend sqlite]
[--followers 100] [--tasks 2000] [--rounds 2]   (from the repo root; needs Redis, and
PostgreSQL at BGPROC_TEST_PG_URL or postgresql://postgres@127.0.0.1:5432/test). About six
minutes with a million runs on both backends.

Issue 16's bench, in two parts per backend:

- **Server time** over ``--runs`` runs (bench_monitor's fill: eight processes, 90 days, 100
  scheduled requests): the Process Monitor page (``/monitor``, its filters, a page deep in
  the history by ``before=``), ``/api/v1/runs`` (the same) and ``/metrics``, each through
  Starlette's test client in-process, so the figure is the server's own time (routing,
  access, the query, rendering) without a socket. Median and max of ``--repeat`` after one
  warm-up; targets 100 ms (pages, API) and 50 ms (``/metrics``).
- **Throughput with live-log followers**: a real ``bgproc web`` and a real worker on a small
  fresh database; ``--tasks`` no-op ad-hoc runs per round drained as bench_throughput does
  (a fresh worker per round on a queue filled before it starts, prefork, concurrency 2),
  with no follower and with ``--followers`` server-sent-event clients following the Process
  Logs of four ``bench.ticker`` runs (a line and a progress report a second each, on a second
  worker of their own queue; the clients in a child process of their own), rounds
  interleaved none / followed / none / … after one warm-up round, so load noise shows.
  Printed: each round with the web server's CPU (from ``/proc``), and the median of each
  followed round's rate over the mean of the unfollowed rounds beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bench.bench_lateness import BGPROC_CLI, Processes, bgproc_env, log_has, wait_until
from bench.bench_monitor import fill, report, timed
from bench.bench_throughput import QUEUE, WORKER_OPTIONS, drain, queue, worker
from bench.machine import REDIS_URL, database, delete_prefix, exit_on_sigterm, machine_line
from bgproc.installation import Installation
from bgproc.services.adhoc import launch
from bgproc.settings import Settings
from bgproc.statuses import RunStatus
from bgproc.store.db import make_engine
from bgproc.store.models import ProcessRun
from bgproc.store.schema import upgrade
from bgproc.web.app import create_app
from bgproc.web.auth import Access

TARGET_PAGE_S = 0.100
TARGET_METRICS_S = 0.050
FOLLOWED_RUNS = 4
TICKER_QUEUE = "bench-ticker"
START_TIMEOUT_S = 60.0


# -- server time ---------------------------------------------------------------------------


def server_times(url: str, prefix: str, total: int, repeat: int) -> None:
    """Each page and endpoint through the test client: the server's time, no socket."""
    settings = Settings(database_url=url, key_prefix=prefix, broker_url=REDIS_URL)
    installation = Installation(settings, interactive=True)
    app = create_app(installation, Access("bench-token", reads_open=True))
    deep = total // 2
    targets = [
        ("/monitor", TARGET_PAGE_S),
        ("/monitor?process=sample.echo", TARGET_PAGE_S),
        ("/monitor?process=rare.once", TARGET_PAGE_S),
        ("/monitor?status=killed", TARGET_PAGE_S),
        ("/monitor?process=rare.once&status=success", TARGET_PAGE_S),
        (f"/monitor?before={deep}", TARGET_PAGE_S),
        ("/api/v1/runs", TARGET_PAGE_S),
        ("/api/v1/runs?process=sample.echo", TARGET_PAGE_S),
        ("/api/v1/runs?process=rare.once", TARGET_PAGE_S),
        ("/api/v1/runs?status=killed", TARGET_PAGE_S),
        (f"/api/v1/runs?before={deep}", TARGET_PAGE_S),
        ("/metrics", TARGET_METRICS_S),
    ]
    try:
        with TestClient(app, base_url="http://127.0.0.1:8765") as web:
            for path, target in targets:

                def get(path: str = path) -> None:
                    answer = web.get(path)
                    assert answer.status_code == 200, (path, answer.text[:500])

                report(f"GET {path}", timed(get, repeat), target)
    finally:
        installation.engine.dispose()


def bench_server(backend: str, total: int, repeat: int) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"bgproc-bench-web-{uuid.uuid4().hex[:8]}:"
    try:
        with database(backend) as url:
            engine = make_engine(url)
            upgrade(engine)
            seconds = fill(engine, total, datetime.now(UTC))
            engine.dispose()
            print(f"{backend}: filled {total:,} runs in {seconds:.1f} s")
            server_times(url, prefix, total, repeat)
    finally:
        delete_prefix(client, prefix)
        client.close()


# -- throughput with live-log followers ------------------------------------------------


def follow(
    base: str, run_ids: list[int], count: int, connected: Synchronized, events: Synchronized,
    stop: Event,
) -> None:  # fmt: skip
    """The followers' child process: ``count`` event streams spread over ``run_ids``,
    counting the clients connected and the events received, until ``stop``."""

    async def one(client: httpx.AsyncClient, run_id: int) -> None:
        async with client.stream("GET", f"/api/v1/runs/{run_id}/log/stream") as answer:
            answer.raise_for_status()
            with connected.get_lock():
                connected.value += 1
            async for line in answer.aiter_lines():
                if line.startswith("event:"):
                    with events.get_lock():
                        events.value += 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=None) as client:
            streams = [
                asyncio.create_task(one(client, run_ids[n % len(run_ids)])) for n in range(count)
            ]
            while not stop.is_set():
                await asyncio.sleep(0.1)
                failed = [task for task in streams if task.done()]
                if failed:
                    failed[0].result()  # a stream that ended is a failure: raise it
                    raise RuntimeError("a followed run's stream ended")
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

    asyncio.run(main())


@contextmanager
def followers(base: str, run_ids: list[int], count: int) -> Iterator[Synchronized]:
    """``count`` clients following live logs, all connected before this yields; the count
    of events they received is yielded."""
    context = multiprocessing.get_context("spawn")
    connected, events, stop = context.Value("i", 0), context.Value("i", 0), context.Event()
    child = context.Process(target=follow, args=(base, run_ids, count, connected, events, stop))
    child.start()
    try:
        wait_until(lambda: connected.value >= count or not child.is_alive(), START_TIMEOUT_S,
                   f"{count} followers")  # fmt: skip
        if not child.is_alive():
            raise RuntimeError(f"the followers' process exited {child.exitcode}")
        yield events
        if not child.is_alive():
            raise RuntimeError(f"the followers' process exited {child.exitcode}")
    finally:
        stop.set()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used: what the web server costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_followed(backend: str, tasks: int, rounds: int, count: int) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"bgproc-bench-web-follow-{uuid.uuid4().hex[:8]}:"
    processes = Processes()
    with database(backend) as url, tempfile.TemporaryDirectory(prefix="bench-web-") as name:
        folder = Path(name)
        settings = Settings(broker_url=REDIS_URL, database_url=url, key_prefix=prefix,
                            timezone="UTC", imports=("tasks", "bench.noop_processes"))  # fmt: skip
        installation = Installation(settings)
        env = bgproc_env(url, prefix, "bench.noop_processes")
        try:
            upgrade(installation.engine)
            port = free_port()
            web_log, ticker_log = folder / "web.log", folder / "ticker.log"
            processes.spawn([sys.executable, "-c", BGPROC_CLI, "web", "--bind",
                             f"127.0.0.1:{port}"], env, folder, web_log)  # fmt: skip
            ticker_node = f"bench-ticker-{uuid.uuid4().hex[:6]}@%h"
            processes.spawn([sys.executable, "-c", BGPROC_CLI, "worker", "-Q", TICKER_QUEUE,
                             "-c", str(FOLLOWED_RUNS), "-n", ticker_node,
                             "--loglevel", "WARNING"], env, folder, ticker_log)  # fmt: skip
            parts = (installation.registry, installation.runs, installation.app)
            followed = [launch(*parts, "bench.ticker", {}) for _ in range(FOLLOWED_RUNS)]

            def check() -> None:
                processes.check_alive([web_log, ticker_log])

            wait_until(log_has(web_log, "bgproc web:"), START_TIMEOUT_S, "bgproc web", check)
            wait_until(lambda: all(installation.runs.get(n).status is RunStatus.processing
                                   for n in followed), START_TIMEOUT_S, "the followed runs",
                       check)  # fmt: skip
            print(f"{backend}: bgproc web on :{port}, {FOLLOWED_RUNS} bench.ticker runs followed; "
                  f"{tasks} no-op ad-hoc runs per round")  # fmt: skip
            measure = rounds_of(installation, client, folder, env, tasks, check)
            print(f"  warm-up round (not counted): {measure():8.0f} tasks/s")
            rates: list[tuple[int, float]] = []
            server = processes.started[0].pid
            for number in range(2 * rounds + 1):
                began, used = time.monotonic(), cpu_s(server)
                if number % 2:
                    with followers(f"http://127.0.0.1:{port}", followed, count) as events:
                        began, used, seen = time.monotonic(), cpu_s(server), events.value
                        rate = measure()
                        per_s = (events.value - seen) / (time.monotonic() - began)
                    note = f", {per_s:.0f} events/s received by the followers"
                    rates.append((count, rate))
                else:
                    rate, note = measure(), ""
                    rates.append((0, rate))
                busy = (cpu_s(server) - used) / (time.monotonic() - began)
                print(f"  round: {rates[-1][0]:3d} followers {rate:8.0f} tasks/s  (bgproc web "
                      f"{busy:.0%} of a core{note})")  # fmt: skip
            ratios = [rates[n][1] / ((rates[n - 1][1] + rates[n + 1][1]) / 2)
                      for n in range(1, len(rates), 2)]  # fmt: skip
            print(f"  {count} followers against none: median ratio to the rounds beside "
                  f"{statistics.median(ratios):.1%} (each: "
                  f"{', '.join(f'{r:.1%}' for r in ratios)})")  # fmt: skip
            for number in followed:
                installation.killer.kill(number, 10)
        finally:
            processes.stop_all()
            installation.engine.dispose()
            delete_prefix(client, prefix)
            client.close()


def rounds_of(
    installation: Installation, client: redis.Redis, folder: Path, env: dict[str, str],
    tasks: int, check: Callable[[], None],
) -> Callable[[], float]:  # fmt: skip
    """One round: ``tasks`` ad-hoc no-op runs drained by a fresh worker; its rate."""
    prefix = installation.settings.key_prefix
    succeeded = (
        select(func.count())
        .select_from(ProcessRun)
        .where(ProcessRun.process == "bench.noop", ProcessRun.status == RunStatus.success)
    )
    drained_so_far = 0

    def measure() -> float:
        nonlocal drained_so_far
        queue(installation, tasks, carried=True)
        drained_so_far += tasks

        def done() -> bool:
            """As bench_throughput's, but the followed runs' messages stay unacked."""
            if client.llen(prefix + QUEUE):
                return False
            with installation.engine.connect() as connection:
                return connection.execute(succeeded).scalar_one() >= drained_so_far

        node = f"bench-web-{uuid.uuid4().hex[:6]}@%h"
        argv = [sys.executable, "-c", BGPROC_CLI, "worker", "-Q", QUEUE, "-n", node,
                *WORKER_OPTIONS]  # fmt: skip
        with worker(argv, env, folder, "worker"):
            seconds = drain(client, prefix + QUEUE, tasks, done)
        check()
        return tasks / seconds

    return measure


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks drained per round")
    parser.add_argument("--rounds", type=int, default=2, help="followed rounds per backend")
    parser.add_argument("--no-server", action="store_true", help="Skip the server times.")
    parser.add_argument("--no-follow", action="store_true", help="Skip the throughput part.")
    args = parser.parse_args()
    os.environ.setdefault("BGPROC_TIMEZONE", "UTC")
    print(machine_line(redis.Redis.from_url(REDIS_URL)))
    for backend in args.backend or ("sqlite", "postgresql"):
        if not args.no_server:
            bench_server(backend, args.runs, args.repeat)
        if not args.no_follow:
            bench_followed(backend, args.tasks, args.rounds, args.followers)


if __name__ == "__main__":
    main()
