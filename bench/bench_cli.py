"""Benchmark: how long a command takes to start and finish, as a user types it.

Run: .venv/bin/python -m bench.bench_cli [--runs 10]   (from the repo root). Takes about a
minute. The listings read a fresh SQLite file (upgraded first, with 10 requests and 200
runs in it); nothing is scheduled, and Redis is asked only for the machine line.

Each command is a fresh process, started ``--runs`` times after one warm-up run (the OS
file cache is warm, as it is for someone typing commands all day); the figure is the
median wall time. ``python -c pass`` (the interpreter alone) and ``celery --help`` are timed
in the same run for reference, and each bgproc figure is also given as its excess over
``python -c pass``, against the targets of issue 14: ``--help`` <= 150 ms, ``preview``
<= 250 ms, ``request list`` and ``monitor list`` <= 400 ms. ``import sqlalchemy.orm`` is
timed too: it is the floor of a listing, which reads through SQLAlchemy.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.machine import REDIS_URL, machine_line

BIN = Path(sys.executable).parent
PREVIEW = ("preview", "--timing", "scheduled", "--frequency", "cron", "--cron", "0 15 10 ? * 6#3")
COMMANDS: list[tuple[str, tuple[str, ...], int | None]] = [  # label, argv, target excess ms
    ("python -c pass", (sys.executable, "-c", "pass"), None),
    ("celery --help", (str(BIN / "celery"), "--help"), None),
    # the floor of any command that reads SQL through SQLAlchemy's ORM, as bgproc's do
    ("import sqlalchemy.orm", (sys.executable, "-c", "import sqlalchemy.orm"), None),
    ("bgproc --version", (str(BIN / "bgproc"), "--version"), None),
    ("bgproc --help", (str(BIN / "bgproc"), "--help"), 150),
    ("bgproc preview (cron)", (str(BIN / "bgproc"), *PREVIEW), 250),
    ("bgproc request list", (str(BIN / "bgproc"), "request", "list"), 400),
    ("bgproc monitor list", (str(BIN / "bgproc"), "monitor", "list"), 400),
    ("bgproc monitor stats", (str(BIN / "bgproc"), "monitor", "stats"), None),
]


def _fill(db_path: Path, env: dict[str, str]) -> None:
    """The schema at head, 10 unscheduled requests and 200 finished runs, written by the
    code being timed (its CLI) and plain SQL, so a ``--code`` checkout reads its own schema."""
    bgproc = str(BIN / "bgproc")
    subprocess.run([bgproc, "db", "upgrade"], env=env, capture_output=True, check=True)
    for number in range(10):
        create = ("request", "create", "sample.echo", "--param", f"n={number}", "--no-schedule")
        subprocess.run([bgproc, *create], env=env, capture_output=True, check=True)
    began = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    rows = [
        ("sample.echo", "{}", "success", "direct", 1, start, start, start + timedelta(seconds=1))
        for start in (began + timedelta(minutes=number) for number in range(200))
    ]
    with sqlite3.connect(db_path) as connection:
        connection.executemany(
            "INSERT INTO bgproc_run (process, params, status, channel, attempt, queued_at,"
            " started_at, ended_at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1000)",
            [(*row[:5], *(moment.isoformat(sep=" ") for moment in row[5:])) for row in rows],
        )


def _median_ms(argv: tuple[str, ...], env: dict[str, str], runs: int) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument(
        "--code", default=None, help="time the bgproc of this checkout instead (a before figure)"
    )
    options = parser.parse_args()
    runs = options.runs
    print(__doc__.splitlines()[0])
    print(machine_line(redis.Redis.from_url(REDIS_URL)))
    with tempfile.TemporaryDirectory() as scratch:
        db_path = Path(scratch) / "bench-cli.db"
        env = {**os.environ, "BGPROC_DATABASE_URL": f"sqlite:///{db_path}"}
        env["BGPROC_TIMEZONE"] = "UTC"
        if options.code:
            env["PYTHONPATH"] = str(Path(options.code).resolve())
            print(f"bgproc code: {env['PYTHONPATH']}")
        _fill(db_path, env)
        figures = {label: _median_ms(argv, env, runs) for label, argv, _ in COMMANDS}
    bare = figures["python -c pass"]
    print(f"\nmedian of {runs} runs (ms)     total   over python -c pass   target")
    missed = 0
    for label, _, target in COMMANDS:
        excess = figures[label] - bare
        verdict = ""
        if target is not None:
            verdict = f"<= {target}  {'ok' if excess <= target else 'MISSED'}"
            missed += excess > target
        print(f"{label:<26} {figures[label]:7.0f}   {excess:+10.0f}            {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
