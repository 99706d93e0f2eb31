"""Benchmark: next-fire computations per second, and request creations per second.

Run: .venv/bin/python -m bench.bench_timing   (needs Redis; PostgreSQL optional)
Prints one line per figure. Each installation uses its own key prefix and database
and removes them afterwards.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import UTC, datetime

import redis
from sqlalchemy import create_engine

from bgproc.installation import Installation
from bgproc.settings import Settings
from bgproc.store.db import make_engine
from bgproc.store.schema import upgrade
from bgproc.timing.plan import Timing

NOW = datetime(2027, 1, 1, tzinfo=UTC)
TIMINGS = {
    "quartz cron '0 15 10 ? * 6#3'": {"frequency": "cron", "cron": "0 15 10 ? * 6#3"},
    "daily at 02:30": {"frequency": "daily", "at": "02:30"},
    "monthly last friday": {
        "frequency": "monthly",
        "ordinal": "last",
        "weekday": "fri",
        "at": "18:00",
    },
    "every 5 seconds": {"frequency": "seconds", "interval": "5"},
}
PG_ADMIN = os.environ.get("BGPROC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def next_fire_rate(fields: dict[str, str], seconds: float = 1.0) -> float:
    """Chained next_fire calls per second (each from the previous fire)."""
    timing = Timing.build(
        {"timing": "scheduled", "tz": "Europe/Madrid", **fields}, now=NOW, default_tz="UTC"
    ).anchored(NOW)
    calls, after = 0, NOW
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            after = timing.next_fire(after) or NOW
        calls += 100
    return calls / seconds


def creation_rate(database_url: str, count: int = 300) -> float:
    """Scheduled requests created per second through the service (SQL row + RedBeat entry)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    installation = Installation(
        Settings(database_url=database_url, key_prefix=prefix, timezone="Europe/Madrid")
    )
    service = installation.requests
    fields = {"process": "sample.echo", "timing": "scheduled", "frequency": "daily", "at": "03:00"}
    service.create(fields)  # warm up: schema, connections
    started = time.perf_counter()
    for _ in range(count):
        service.create(fields)
    rate = count / (time.perf_counter() - started)
    client = redis.Redis.from_url(installation.settings.broker_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    installation.engine.dispose()
    return rate


def main() -> None:
    print("== next-fire computations per second (Europe/Madrid)")
    for label, fields in TIMINGS.items():
        print(f"{label:34s} {next_fire_rate(fields):>12,.0f} /s")
    print("== request creations per second through the service (SQL + Redis)")
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'sqlite':34s} {creation_rate(f'sqlite:///{folder}/bench.db'):>12,.0f} /s")
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bgproc_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(make_engine(url))
        print(f"{'postgresql':34s} {creation_rate(url):>12,.0f} /s")
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
