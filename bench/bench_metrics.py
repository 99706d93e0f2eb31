"""Benchmark: ``/metrics`` over 100,000 stored runs (``--runs`` for more), SQLite and PostgreSQL.

Run: python3 -m bench.bench_metrics [--runs 100000] [--repeat 5] [--backend sqlite]   (from the
repo root; needs Redis, and PostgreSQL at BGPROC_TEST_PG_URL or
postgresql://postgres@127.0.0.1:5432/test). Takes under a minute.

The runs are bench_monitor's (eight processes, 90 days, 100 scheduled requests). Each query
of ``bgproc.store.metrics`` is timed on its own, the window's also with a start 100 days back
(every one of the newest 10,000 runs then falls in it: the most it ever reads), and the
whole endpoint through Starlette's test client (the Redis reads included, from a key
prefix of its own, deleted after). Each figure is the median (and max) of ``--repeat``
timings after one warm-up. The target, 50 ms, is issue 16's for a million runs.
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import UTC, datetime, timedelta

import redis
from starlette.testclient import TestClient

from bench.bench_monitor import fill, report, timed
from bench.machine import REDIS_URL, database, delete_prefix, exit_on_sigterm, machine_line
from bgproc.installation import Installation
from bgproc.settings import METRICS_WINDOW_RUNS, METRICS_WINDOW_S, Settings
from bgproc.store import metrics
from bgproc.store.db import make_engine
from bgproc.store.schema import upgrade
from bgproc.web.app import create_app
from bgproc.web.auth import Access

TARGET_S = 0.050


def bench_backend(backend: str, total: int, repeat: int) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"bgproc-bench-metrics-{uuid.uuid4().hex[:8]}:"
    with database(backend) as url:
        engine = make_engine(url)
        upgrade(engine)
        now = datetime.now(UTC)
        print(f"{backend}: filled {total:,} runs in {fill(engine, total, now):.1f} s")
        hour = now - timedelta(seconds=METRICS_WINDOW_S)
        years = now - timedelta(days=100)
        cap = METRICS_WINDOW_RUNS
        queries = [
            ("recent_runs (the last hour)", lambda: metrics.recent_runs(engine, hour, cap)),
            (f"recent_runs (all {cap:,} newest in the window)",
             lambda: metrics.recent_runs(engine, years, cap)),
            ("processing", lambda: metrics.processing(engine)),
            ("last_successes (100 requests)", lambda: metrics.last_successes(engine)),
        ]  # fmt: skip
        for label, action in queries:
            report(label, timed(action, repeat), TARGET_S)
        settings = Settings(database_url=url, key_prefix=prefix, broker_url=REDIS_URL)
        installation = Installation(settings, interactive=True)
        app = create_app(installation, Access("bench-token", reads_open=True))
        try:
            with TestClient(app, base_url="http://127.0.0.1:8765") as web:

                def scrape() -> None:
                    answer = web.get("/metrics")
                    assert answer.status_code == 200, answer.text

                report("GET /metrics (whole endpoint)", timed(scrape, repeat), TARGET_S)
        finally:
            installation.engine.dispose()
            engine.dispose()
            delete_prefix(client, prefix)
    client.close()


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    args = parser.parse_args()
    os.environ.setdefault("BGPROC_TIMEZONE", "UTC")
    print(machine_line(redis.Redis.from_url(REDIS_URL)))
    for backend in args.backend or ("sqlite", "postgresql"):
        bench_backend(backend, args.runs, args.repeat)


if __name__ == "__main__":
    main()
