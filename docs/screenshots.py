"""The README's pictures: the Process Monitor and the Stats page of a small real installation.

Run: .venv/bin/python docs/screenshots.py   (from the repo root; needs Redis and Debian's
chromium, which .ci/setup installs). Takes about a minute. It starts ``bgproc up --web`` on a
fresh SQLite file and a key prefix of its own (deleted after), runs the sample processes a
few times (one of them failing, one still going, reporting progress) over a day of earlier
runs written into the table (so the charts have a shape), and saves
docs/img/monitor.png and docs/img/stats.png.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
BGPROC = Path(sys.executable).with_name("bgproc")
SHOTS = ROOT / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 1000}
HISTORY = [  # the day before: process, runs, share of errors, typical seconds
    ("billing.close_day", 24, 0.08, 40.0),
    ("sample.sleep", 120, 0.0, 3.0),
    ("sample.echo", 600, 0.01, 0.01),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(what: str, ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _history(db_path: Path) -> None:
    """A day of earlier runs written straight into the table, so the charts have a shape."""
    now = datetime.now(UTC).replace(tzinfo=None)
    chance = random.Random(7)
    rows = []
    for process, count, errors, seconds in HISTORY:
        for number in range(count):
            began = now - timedelta(hours=24) + timedelta(hours=24 * number / count, minutes=1)
            took = seconds * chance.uniform(0.5, 1.6)
            status = "error" if chance.random() < errors else "success"
            stamps = [t.isoformat(sep=" ") for t in (began, began, began + timedelta(seconds=took))]
            rows.append((process, status, *stamps, int(took * 1000)))
    with sqlite3.connect(db_path) as connection:
        connection.executemany(
            "INSERT INTO bgproc_run (process, params, status, channel, attempt, queued_at,"
            " started_at, ended_at, duration_ms) VALUES (?, '{}', ?, 'direct', 1, ?, ?, ?, ?)",
            rows,
        )


def main() -> None:
    prefix = f"bgproc-shots-{uuid.uuid4().hex[:8]}:"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "BGPROC_DATABASE_URL": f"sqlite:///{scratch}/bgproc.db",
               "BGPROC_KEY_PREFIX": prefix, "BGPROC_TIMEZONE": "Europe/Madrid"}  # fmt: skip

        def bgproc(*args: str) -> str:
            done = subprocess.run([str(BGPROC), *args], env=env, capture_output=True,
                                  text=True, check=False)  # fmt: skip
            return done.stdout

        bgproc("db", "upgrade")
        _history(Path(scratch) / "bgproc.db")
        up = subprocess.Popen([str(BGPROC), "up", "--web", "--bind", f"127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
        try:
            _until("bgproc web", lambda: _answers(url + "/api/v1/processes"))
            bgproc("request", "create", "sample.echo", "--timing", "scheduled", "--frequency",
                   "seconds", "--interval", "2", "--param", "greeting=hello")  # fmt: skip
            for seconds in ("0.5", "1.5", "3"):
                bgproc("run", "sample.sleep", "--param", f"seconds={seconds}", "--wait")
            bgproc("run", "sample.fail", "--param", "message=the ledger did not balance", "--wait")
            bgproc("run", "sample.sleep", "--param", "seconds=40")  # still going: its progress
            time.sleep(6)  # a few fires of the every-2-s request and progress of the long run
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = browser.new_page(viewport=VIEWPORT, base_url=url)
                SHOTS.mkdir(parents=True, exist_ok=True)
                for path, name, whole in (("/monitor", "monitor.png", False),
                                          ("/stats", "stats.png", True)):  # fmt: skip
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(SHOTS / name), full_page=whole)
                    print(f"saved {SHOTS / name}")
                browser.close()
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=30)
            client = redis.Redis.from_url(env.get("BGPROC_BROKER_URL", "redis://127.0.0.1:6379/0"))
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)


if __name__ == "__main__":
    main()
