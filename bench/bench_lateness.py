"""Benchmark: start lateness of a 1-second schedule, bgproc against plain RedBeat, in one run.

Run: .venv/bin/python -m bench.bench_lateness [--fires 45] [--warmup 3] [--keep-logs DIR]
(from the repo root; needs Redis on 127.0.0.1:6379 or BGPROC_BROKER_URL). Takes about two minutes.

The two set-ups run one after the other on the same machine, each with its own key prefix,
one beat process and one worker process (prefork, ``--concurrency 2``), and the same broker,
loop and lock settings (``beat_max_loop_interval`` 1 s, lock timeout 10 s, late acks,
prefetch 1):

- **bgproc**: ``bgproc beat`` (``bgproc.runtime.beat:Scheduler``) and ``bgproc worker``, SQLite in a
  temporary directory, one request ``sample.echo`` every 1 s created through
  ``Installation(settings).requests.create``. Lateness of a fire = ``bgproc_run.started_at``
  − ``bgproc_run.scheduled_at``: the run's recorded start (taken by the runner after it read
  the request from SQL, just before the process is called) minus the due time on the plan's
  whole-second grid (never drifts).
- **plain RedBeat**: ``celery beat -S redbeat.RedBeatScheduler`` and ``celery worker`` on
  ``bench.plain_redbeat_app``, one ``RedBeatSchedulerEntry(name, task,
  schedule(timedelta(seconds=1)))``, a task that records ``time.time()`` as its first
  statement. RedBeat stores ``last_run_at`` as the moment it ran a fire, and its next fire
  is due at that + 1 s, so its grid drifts by its own lag every second. Measuring against a
  fixed grid would make its lateness grow without bound; instead lateness of a fire = task
  start − (``last_run_at`` of the previous fire + 1 s), the due time RedBeat itself computed
  for that fire (``last_run_at`` read from the entry's meta in beat, after each publish).
  The drift is printed separately.

The first ``--warmup`` fires of each are left out (pool children importing, connections,
and bgproc's first fire being due at the whole second the request was created in).
Percentiles interpolate linearly between ranks: with fewer than 100 fires, p99 lies
between the two largest values. Keys, processes and the temporary directory are removed
at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import redis
from celery.schedules import schedule
from redbeat.decoder import RedBeatJSONDecoder
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf
from sqlalchemy import func, select

from bench import plain_redbeat_app as plain
from bench.machine import REDIS_URL, delete_prefix, exit_on_sigterm, machine_line, percentile
from bgproc.installation import Installation
from bgproc.settings import Settings
from bgproc.store.models import ProcessRun
from bgproc.store.schema import upgrade

REPO = Path(__file__).resolve().parents[1]
BGPROC_CLI = "import sys; from cli.main import run; sys.argv[0] = 'bgproc'; run()"
TARGET_MS = 10.0  # ours may be at most this much later than plain RedBeat at p99
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Result:
    """Lateness of each measured fire, in ms, and a note on what was measured."""

    label: str
    lateness_ms: list[float]
    note: str = ""


# -- processes --------------------------------------------------------------------


class Processes:
    """Children started by this benchmark, each in its own session; stopped by their ids."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)

    def stop_all(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL of the child's own process group."""
        for process in reversed(self.started):  # beat was started last: it stops first
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=15)
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # leftover pool children, if any
            process.wait()
        self.started.clear()

    def check_alive(self, logs: list[Path]) -> None:
        for process in self.started:
            if process.poll() is not None:
                tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{tails}")


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str,
               check: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def log_has(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text(errors="replace")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def bgproc_env(database_url: str, prefix: str, imports: str = "") -> dict[str, str]:
    """The environment of a bench's bgproc child: its database and key prefix, in UTC."""
    extra = {"BGPROC_BROKER_URL": REDIS_URL, "BGPROC_DATABASE_URL": database_url,
             "BGPROC_KEY_PREFIX": prefix, "BGPROC_TIMEZONE": "UTC"}  # fmt: skip
    return child_env({**extra, "BGPROC_IMPORTS": imports} if imports else extra)


@contextmanager
def running(folder: Path, client: redis.Redis, prefix: str) -> Iterator[Processes]:
    """Processes that are stopped, and a prefix whose keys are deleted, whatever happens."""
    processes = Processes()
    try:
        yield processes
    finally:
        processes.stop_all()
        delete_prefix(client, prefix)


# -- bgproc -------------------------------------------------------------------------


def measure_bgproc(client: redis.Redis, folder: Path, fires: int, warmup: int) -> Result:
    prefix = f"bench-lateness-{uuid.uuid4().hex[:8]}:"
    database = folder / "bgproc.db"
    settings = Settings(
        broker_url=REDIS_URL, database_url=f"sqlite:///{database}", key_prefix=prefix,
        timezone="UTC",
    )
    installation = Installation(settings)
    upgrade(installation.engine)  # before the processes start, so they never migrate at once
    env = bgproc_env(settings.database_url, prefix)
    worker_log, beat_log = folder / "bgproc-worker.log", folder / "bgproc-beat.log"
    logs = [worker_log, beat_log]
    node = f"bench-{uuid.uuid4().hex[:6]}@%h"
    lock_key = ensure_conf(installation.app).lock_key
    try:
        with running(folder, client, prefix) as processes:
            python = [sys.executable, "-c", BGPROC_CLI]
            processes.spawn([*python, "worker", "--concurrency", "2", "-n", node], env, folder,
                            worker_log)
            processes.spawn([*python, "beat"], env, folder, beat_log)

            def alive() -> None:
                processes.check_alive(logs)

            wait_until(lambda: client.exists(lock_key), START_TIMEOUT_S, "the beat lock", alive)
            wait_until(log_has(beat_log, "beat: sync"), START_TIMEOUT_S, "beat's sync", alive)
            wait_until(log_has(worker_log, " ready."), START_TIMEOUT_S, "the worker", alive)
            request = installation.requests.create(
                {"process": "sample.echo", "timing": "scheduled", "frequency": "seconds",
                 "interval": 1}
            )
            started = (
                select(func.count()).select_from(ProcessRun)
                .where(ProcessRun.request_id == request.id, ProcessRun.started_at.is_not(None))
            )

            def count() -> int:
                with installation.engine.connect() as connection:
                    return int(connection.execute(started).scalar_one())

            wait_until(lambda: count() >= warmup + fires, warmup + fires + 30.0,
                       f"{warmup + fires} bgproc runs", alive)
            processes.stop_all()
        query = (
            select(ProcessRun.scheduled_at, ProcessRun.started_at, ProcessRun.status)
            .where(ProcessRun.request_id == request.id, ProcessRun.started_at.is_not(None))
            .order_by(ProcessRun.scheduled_at)
        )
        with installation.engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        installation.engine.dispose()
    measured = rows[warmup:warmup + fires]
    statuses = sorted({str(row.status) for row in measured})
    lateness = [(row.started_at - row.scheduled_at).total_seconds() * 1000 for row in measured]
    return Result("bgproc", lateness, f"run statuses: {', '.join(statuses)}")


# -- plain RedBeat ------------------------------------------------------------------


def measure_plain(client: redis.Redis, folder: Path, fires: int, warmup: int) -> Result:
    prefix = f"bench-lateness-plain-{uuid.uuid4().hex[:8]}:"
    app = plain.make_app(prefix, REDIS_URL)
    env = child_env({plain.PREFIX_ENV: prefix, plain.REDIS_URL_ENV: REDIS_URL})
    worker_log, beat_log = folder / "plain-worker.log", folder / "plain-beat.log"
    logs = [worker_log, beat_log]
    node = f"bench-plain-{uuid.uuid4().hex[:6]}@%h"
    lock_key = ensure_conf(app).lock_key
    celery = [sys.executable, "-m", "celery", "-A", "bench.plain_redbeat_app"]
    with running(folder, client, prefix) as processes:
        processes.spawn([*celery, "worker", "--loglevel", "INFO", "--concurrency", "2",
                         "-n", node], env, folder, worker_log)
        processes.spawn([*celery, "beat", "--loglevel", "INFO", "-S", "redbeat.RedBeatScheduler"],
                        env, folder, beat_log)

        def alive() -> None:
            processes.check_alive(logs)

        wait_until(lambda: client.exists(lock_key), START_TIMEOUT_S, "the beat lock", alive)
        wait_until(log_has(worker_log, " ready."), START_TIMEOUT_S, "the worker", alive)
        time.sleep(0.5)  # beat's first tick, as bgproc's waits for its start-up sync
        entry = RedBeatSchedulerEntry(
            plain.ENTRY_NAME, plain.TASK_NAME, schedule(timedelta(seconds=1)), app=app
        )
        created: datetime = entry.last_run_at  # the meta save() writes: first due = this + 1 s
        entry.save()
        starts_key, fires_key = prefix + "bench:starts", prefix + "bench:fires"
        wait_until(lambda: client.llen(starts_key) >= warmup + fires, warmup + fires + 30.0,
                   f"{warmup + fires} plain RedBeat runs", alive)
        processes.stop_all()
        fired = [json.loads(raw) for raw in client.lrange(fires_key, 0, -1)]
        starts = {s["id"]: s["started"] for s in map(json.loads, client.lrange(starts_key, 0, -1))}
    lateness: list[float] = []
    previous = created
    last_runs: list[datetime] = []
    for fire in fired:  # publish order: one beat, one entry
        last_run_at = json.loads(fire["meta"], cls=RedBeatJSONDecoder)["last_run_at"]
        due = previous + timedelta(seconds=1)
        if fire["id"] in starts:
            lateness.append((starts[fire["id"]] - due.timestamp()) * 1000)
        previous = last_run_at
        last_runs.append(last_run_at)
    measured = lateness[warmup:warmup + fires]
    span = last_runs[warmup + len(measured) - 1] - last_runs[warmup - 1] if warmup else None
    note = ""
    if span is not None and measured:
        drift_ms = (span.total_seconds() - len(measured)) * 1000
        note = (f"its grid drifted {drift_ms:.0f} ms over {len(measured)} fires "
                f"(mean period {span.total_seconds() / len(measured) * 1000:.1f} ms)")
    return Result("plain RedBeat", measured, note)


# -- report -------------------------------------------------------------------------


def report(results: list[Result]) -> None:
    for result in results:
        values = result.lateness_ms
        label = result.label
        print(f"{label:14s} fires measured      {len(values)}")
        print(f"{label:14s} lateness min        {min(values):8.1f} ms")
        print(f"{label:14s} lateness p50        {percentile(values, 50):8.1f} ms")
        print(f"{label:14s} lateness p99        {percentile(values, 99):8.1f} ms")
        print(f"{label:14s} lateness max        {max(values):8.1f} ms")
        if result.note:
            print(f"{label:14s} note: {result.note}")
    ours, theirs = (percentile(r.lateness_ms, 99) for r in results)
    difference = ours - theirs
    verdict = "PASS" if difference <= TARGET_MS else "FAIL"
    print(f"p99 difference (bgproc - plain RedBeat) {difference:+8.1f} ms   "
          f"(target <= +{TARGET_MS:.0f} ms: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=45, help="fires measured per set-up")
    parser.add_argument("--warmup", type=int, default=3, help="first fires left out")
    parser.add_argument("--keep-logs", type=Path, help="copy the beat and worker logs here")
    args = parser.parse_args()
    exit_on_sigterm()
    client = redis.Redis.from_url(REDIS_URL)
    print("== bench_lateness: start lateness of a 1-second schedule, bgproc vs plain RedBeat "
          "(same run, one after the other)")
    print(machine_line(client))
    print("bgproc:        lateness = bgproc_run.started_at - scheduled_at (plan's whole-second "
          "grid); bgproc beat + bgproc worker --concurrency 2, SQLite, sample.echo")
    print("plain RedBeat: lateness = task's first time.time() - (previous fire's last_run_at "
          "+ 1 s), the due RedBeat computed; celery beat -S redbeat.RedBeatScheduler + "
          "celery worker --concurrency 2, no-op task")
    print(f"fires: {args.fires} measured per set-up after {args.warmup} warm-up; "
          "beat_max_loop_interval 1 s, lock timeout 10 s, acks_late, prefetch 1")
    with tempfile.TemporaryDirectory(prefix="bench-lateness-") as name:
        folder = Path(name)
        try:
            results = [
                measure_bgproc(client, folder, args.fires, args.warmup),
                measure_plain(client, folder, args.fires, args.warmup),
            ]
        finally:
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in folder.glob("*.log"):
                    shutil.copy(log, args.keep_logs / log.name)
    report(results)
    client.close()


if __name__ == "__main__":
    main()
