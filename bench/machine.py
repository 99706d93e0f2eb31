"""Shared helpers of the benchmarks: the machine line, percentiles, key clean-up.

Not a benchmark itself; imported by ``bench.bench_lateness`` and ``bench.bench_tick``.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import tempfile
import uuid
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

import redis
from sqlalchemy import create_engine

from bgproc.store.db import normalise_url

REDIS_URL = os.environ.get("BGPROC_BROKER_URL") or "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = os.environ.get(
    "BGPROC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def machine_line(client: redis.Redis) -> str:
    """nproc, load average, Python, Redis and the Celery/RedBeat versions, on one line."""
    server = client.info("server")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: nproc={os.cpu_count()}, {platform.machine()}, load average {load}, "
        f"python {platform.python_version()}, redis {server.get('redis_version', '?')}, "
        f"celery {_version('celery')}, celery-redbeat {_version('celery-redbeat')}, "
        f"redis-py {_version('redis')}"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with ``prefix``; how many went."""
    deleted = 0
    batch: list[bytes | str] = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so every ``finally`` clean-up runs."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """A URL of a fresh, empty database of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bgproc-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'runs.db'}"
        return
    admin = create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"bgproc_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
