"""Benchmark: ``monitor list --limit 50`` and ``monitor stats`` over 1,000,000 runs.

Run: python3 -m bench.bench_monitor [--runs 1000000] [--repeat 5] [--no-prune]   (from the repo
root; needs PostgreSQL at BGPROC_TEST_PG_URL or postgresql://postgres@127.0.0.1:5432/test).
Takes about three minutes.

Both stores are filled in SQL (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL):
eight processes with skewed shares (40 % down to 0.1 %), 85 % success and the rest spread
over the other finished statuses, the newest 20 queued/processing, one run every ~8 s over
90 days, durations up to ~110 s with ~100,000 distinct values, a ~90-character log each, a
third of them from 100 requests. The SQLite file is a fresh temporary file; the PostgreSQL
database is created for the run and dropped after, also on error. PostgreSQL is ANALYZEd after
the load (autovacuum would do it); SQLite is not (bgproc never runs ANALYZE there).

Each figure is the median (and max) of ``--repeat`` timings after one warm-up: the query
through ``RunStore``, and the whole command in-process via ``cli.main.main`` (settings,
engine, schema check, registry, printing; the output is discarded). Last, unless
``--no-prune``: ``prune --older-than 1s`` of every finished run, in batches of 5,000.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, text

from bench.machine import database, exit_on_sigterm
from bgproc.statuses import RunStatus
from bgproc.store.db import make_engine
from bgproc.store.models import ProcessRequest
from bgproc.store.pruning import PRUNE_BATCH
from bgproc.store.runs import RunStore
from bgproc.store.schema import upgrade
from cli.main import main as cli_main

SPAN_S = 90 * 86400
REQUESTS = 100
LIVE_TAIL = 20  # the newest runs: 10 processing, then 10 queued
TARGET_LIST_S = 0.100
TARGET_STATS_S = 1.0

# (name, cumulative share in per mille): ``n % 1000`` picks the process.
PROCESSES = (
    ("sample.echo", 400),
    ("sample.sleep", 650),
    ("sample.fail", 750),
    ("sample.spam", 850),
    ("etl.load", 930),
    ("report.daily", 980),
    ("test.secret", 999),
    ("rare.once", 1000),
)
# (name, cumulative share in per mille): a multiplicative hash of ``n`` picks the status.
STATUSES = (
    ("success", 850),
    ("error", 930),
    ("skipped", 960),
    ("killed", 970),
    ("misfired", 980),
    ("lost", 1000),
)


def _case(expression: str, table: tuple[tuple[str, int], ...]) -> str:
    """A SQL CASE picking a name from a cumulative per-mille table."""
    arms = " ".join(f"WHEN {expression} < {limit} THEN '{name}'" for name, limit in table)
    return f"CASE {arms} END"


def _columns(total: int) -> dict[str, str]:
    """Dialect-neutral SQL of the generated run ``n`` (1..total); times are left to the caller."""
    status = _case("(((n * 2654435761) % 4294967296) % 1000)", STATUSES)
    return {
        "request_id": f"CASE WHEN n % 3 = 0 THEN (n / 3) % {REQUESTS} + :first_request END",
        "process": _case("(n % 1000)", PROCESSES),
        "status": f"CASE WHEN n > {total - LIVE_TAIL // 2} THEN 'queued' "
        f"WHEN n > {total - LIVE_TAIL} THEN 'processing' ELSE {status} END",
        # 0..~110 s, ~100,000 distinct values: as varied as real millisecond timings
        "duration": "(((n * 7919) % 9973) * (1 + n % 11) + (n * 31) % 1000)",
        "channel": "CASE WHEN n % 3 = 0 THEN 'scheduler' ELSE 'direct' END",
    }


SQLITE_FILL = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :total),
gen AS (
  SELECT n, {request_id} AS request_id, {process} AS process, {status} AS status,
         {duration} AS duration, {channel} AS channel,
         (:start_ms + n * :step_ms) AS t_ms
  FROM seq
)
INSERT INTO bgproc_run (request_id, process, params, status, scheduled_at, queued_at,
  started_at, ended_at, duration_ms, worker, attempt, log, error, task_id, channel)
SELECT request_id, process, '{{"n": ' || n || '}}', status,
  {ts_t}, {ts_t},
  CASE WHEN status IN ('queued', 'misfired', 'skipped') THEN NULL ELSE {ts_t} END,
  CASE WHEN status IN ('queued', 'processing') THEN NULL ELSE {ts_end} END,
  CASE WHEN status IN ('queued', 'processing', 'misfired', 'skipped') THEN NULL
       ELSE duration END,
  'worker-' || (n % 4), 1,
  CASE WHEN status IN ('queued', 'misfired', 'skipped') THEN NULL
       ELSE 'hh:mm:ss INFO run ' || n || ' started' || char(10) ||
            'hh:mm:ss INFO working on it' || char(10) || 'hh:mm:ss INFO done' || char(10) END,
  CASE WHEN status = 'error' THEN 'RuntimeError: failed on purpose' END,
  'bench-' || n, channel
FROM gen
"""


def _sqlite_ts(ms: str) -> str:
    """SQLite text of an epoch in ms, exactly as SQLAlchemy writes a UTC datetime."""
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', ({ms}) / 1000, 'unixepoch') || '.' || "
        f"printf('%06d', (({ms}) % 1000) * 1000))"
    )


PG_FILL = """
INSERT INTO bgproc_run (request_id, process, params, status, scheduled_at, queued_at,
  started_at, ended_at, duration_ms, worker, attempt, log, error, task_id, channel)
SELECT request_id, process, json_build_object('n', n), status,
  t, t,
  CASE WHEN status IN ('queued', 'misfired', 'skipped') THEN NULL ELSE t END,
  CASE WHEN status IN ('queued', 'processing') THEN NULL
       ELSE t + duration * interval '1 millisecond' END,
  CASE WHEN status IN ('queued', 'processing', 'misfired', 'skipped') THEN NULL
       ELSE duration END,
  'worker-' || (n % 4), 1,
  CASE WHEN status IN ('queued', 'misfired', 'skipped') THEN NULL
       ELSE 'hh:mm:ss INFO run ' || n || E' started\\nhh:mm:ss INFO working on it\\n'
            || E'hh:mm:ss INFO done\\n' END,
  CASE WHEN status = 'error' THEN 'RuntimeError: failed on purpose' END,
  'bench-' || n, channel
FROM (
  SELECT n, {request_id} AS request_id, {process} AS process, {status} AS status,
         {duration} AS duration, {channel} AS channel,
         to_timestamp((:start_ms + n * :step_ms) / 1000.0) AS t
  FROM generate_series(1::bigint, :total) AS n
) AS gen
"""


def fill(engine: Engine, total: int, now: datetime) -> float:
    """Write 100 requests and ``total`` runs in a single statement; the seconds it took."""
    began = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            insert(ProcessRequest),
            [
                {
                    "process": "sample.echo",
                    "params": {},
                    "timing": {
                        "v": 1,
                        "timing": "scheduled",
                        "tz": "UTC",
                        "frequency": "minutes",
                        "interval": 5,
                    },
                    "status": "scheduled",
                    "created_at": now - timedelta(seconds=SPAN_S),
                    "updated_at": now - timedelta(seconds=SPAN_S),
                }
                for _ in range(REQUESTS)
            ],
        )
        first_request = connection.scalar(text("SELECT min(id) FROM bgproc_request"))
        columns = _columns(total)
        if engine.dialect.name == "sqlite":
            ts_t = _sqlite_ts("t_ms")
            ts_end = _sqlite_ts("t_ms + duration")
            sql = SQLITE_FILL.format(ts_t=ts_t, ts_end=ts_end, **columns)
        else:
            # A synchronous commit: VACUUM cannot mark a page all-visible before the commit
            # of its rows is on disk, and an asynchronous one often was not yet
            sql = PG_FILL.format(**columns)
        step_ms = SPAN_S * 1000 // total
        start_ms = int(now.timestamp() * 1000) - total * step_ms
        connection.execute(
            text(sql),
            {
                "total": total,
                "start_ms": start_ms,
                "step_ms": step_ms,
                "first_request": first_request,
            },
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE bgproc_run")
            connection.exec_driver_sql("ANALYZE bgproc_request")
    return time.perf_counter() - began


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and max wall time in seconds of ``repeat`` calls, after one warm-up call."""
    action()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times), max(times)


def cli(*args: str) -> None:
    """``bgproc ARGS`` in-process, output discarded; a failure stops the benchmark."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(list(args))
    if code != 0:
        raise SystemExit(f"bgproc {' '.join(args)} exited {code}")


def report(label: str, figures: tuple[float, float], target_s: float | None = None) -> None:
    median, worst = figures
    verdict = ""
    if target_s is not None:
        verdict = (
            f"  target <= {target_s * 1000:.0f} ms: {'ok' if median <= target_s else 'MISSED'}"
        )
    print(f"  {label:<52} median {median * 1000:8.1f} ms  max {worst * 1000:8.1f} ms{verdict}")


def _all_visible(engine: Engine) -> float:
    """The share of the table's pages in PostgreSQL's visibility map: what lets an index
    answer a query on its own (an index-only scan)."""
    with engine.connect() as connection:
        pages, visible = connection.execute(
            text("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'bgproc_run'")
        ).one()
    return visible / pages if pages else 1.0


def bench_backend(backend: str, total: int, repeat: int, prune: bool) -> None:
    with database(backend) as url:
        engine = make_engine(url)
        upgrade(engine)
        now = datetime.now(UTC)
        version = sqlite3.sqlite_version
        if backend == "postgresql":
            with engine.connect() as connection:
                version = connection.scalar(text("SHOW server_version"))
        print(f"{backend} {version}: filled {total:,} runs in {fill(engine, total, now):.1f} s")
        if backend == "postgresql":
            print(f"  {_all_visible(engine):.0%} of bgproc_run's pages all-visible after VACUUM "
                  "(stats reads the table for the others)")  # fmt: skip
        store = RunStore(engine)
        os.environ.update(BGPROC_DATABASE_URL=url, BGPROC_TIMEZONE="UTC")
        queries: list[tuple[str, Callable[[], object], float | None]] = [
            ("list --limit 50 (query)", lambda: store.list(limit=50), TARGET_LIST_S),
            (
                "list --limit 50 --before 500000 (query)",
                lambda: store.list(before_id=500_000),
                None,
            ),
            ("list --process sample.echo (query)", lambda: store.list(process="sample.echo"), None),
            (
                "list --process rare.once (0.1 %) (query)",
                lambda: store.list(process="rare.once"),
                None,
            ),
            ("list --status killed (query)", lambda: store.list(status=RunStatus.killed), None),
            ("list --request 40 (query)", lambda: store.list(request_id=40), None),
            ("list --since 1h (query)", lambda: store.list(since=now - timedelta(hours=1)), None),
            (
                "list --since 61d --until 60d (query)",
                lambda: store.list(since=now - timedelta(days=61), until=now - timedelta(days=60)),
                None,
            ),
            (
                "list --process rare.once --status success (query)",
                lambda: store.list(process="rare.once", status=RunStatus.success),
                None,
            ),
            (
                "monitor list --limit 50 (CLI in-process)",
                lambda: cli("monitor", "list"),
                TARGET_LIST_S,
            ),
            (
                "monitor list --limit 50 --json (CLI in-process)",
                lambda: cli("monitor", "list", "--json"),
                TARGET_LIST_S,
            ),
            ("stats (query)", store.stats, TARGET_STATS_S),
            (
                "stats --process sample.echo (query)",
                lambda: store.stats(process="sample.echo"),
                None,
            ),
            ("stats --since 7d (query)", lambda: store.stats(since=now - timedelta(days=7)), None),
            (
                "stats --process sample.echo --since 7d (query)",
                lambda: store.stats(process="sample.echo", since=now - timedelta(days=7)),
                None,
            ),
            ("monitor stats (CLI in-process)", lambda: cli("monitor", "stats"), TARGET_STATS_S),
        ]
        for label, action, target in queries:
            report(label, timed(action, repeat), target)
        if prune:
            began = time.perf_counter()
            pruned = store.prune(now=datetime.now(UTC), older_than=timedelta(seconds=1))
            spent = time.perf_counter() - began
            rows = pruned.success_runs + pruned.other_runs
            batches = -(-pruned.success_runs // PRUNE_BATCH) - (-pruned.other_runs // PRUNE_BATCH)
            print(
                f"  prune --older-than 1s: {rows:,} runs in {spent:.1f} s, {batches} batches of "
                f"<= {PRUNE_BATCH:,} (mean {spent / max(batches, 1) * 1000:.0f} ms per batch)"
            )
        engine.dispose()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-prune", action="store_true", help="Skip the prune figure.")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"machine: nproc={os.cpu_count()}, {platform.machine()}, load average {load}, "
        f"python {platform.python_version()}"
    )
    for backend in args.backend or ("sqlite", "postgresql"):
        bench_backend(backend, args.runs, args.repeat, not args.no_prune)


if __name__ == "__main__":
    main()
