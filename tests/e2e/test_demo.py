"""The README's first command, ``.ci/demo``, shows what a new user should see: every run
accounted for, nothing reported missed, and a full success rate where nothing failed.

It runs as written (its requests are created before ``bgproc up`` starts, the README's
order), on a SQLite file and a Redis key prefix of this test's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/0"


@pytest.mark.slow
def test_the_demo_reports_no_false_alarm(tmp_path: Path) -> None:
    prefix = f"bgproc-test-demo-{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "BGPROC_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "BGPROC_KEY_PREFIX": prefix,
        "BGPROC_BROKER_URL": BROKER,
        "BGPROC_TIMEZONE": "Europe/Madrid",
    }
    try:
        done = subprocess.run(
            ["bash", str(ROOT / ".ci" / "demo")], env=env, capture_output=True, text=True,
            timeout=240, check=False,
        )  # fmt: skip
    finally:
        client = redis.Redis.from_url(BROKER)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
    out = done.stdout
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in out + done.stderr
    listing = out[out.index("$ bgproc monitor list") : out.index("$ bgproc monitor stats")]
    assert "misfired" not in listing, listing
    stats = out[out.index("$ bgproc monitor stats") :]
    rates = dict(re.findall(r"(sample\.\w+)\s.*?(\d+\.\d)\s?%", stats))
    assert rates.get("sample.echo") == "100.0", stats
    assert rates.get("sample.fail") == "0.0", stats
