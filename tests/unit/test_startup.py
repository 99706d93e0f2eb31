"""A command loads only what it uses, so the CLI starts fast (the figures: bench/bench_cli.py).

Each command runs in a fresh interpreter that reports which heavy libraries it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bgproc.store.models import SCHEMA_REVISION
from bgproc.store.schema import head_revisions

SERVICES = {"celery", "kombu", "redbeat", "redis", "sqlalchemy", "alembic"}
PRINTING = {"rich", "cron_descriptor"}
WEB = {"starlette", "uvicorn", "jinja2", "multipart", "anyio", "prometheus_client"}
PG_DIALECT = "sqlalchemy.dialects.postgresql"  # ~20 ms that a SQLite installation never needs
PROBE = f"""
import json, sys
from cli.main import main
code = main(sys.argv[1:])
loaded = {{name.split(".")[0] for name in sys.modules}} & set({sorted(SERVICES | PRINTING | WEB)!r})
loaded |= {{{PG_DIALECT!r}}} & set(sys.modules)
print(json.dumps({{"code": code, "loaded": sorted(loaded)}}), file=sys.stderr)
"""


def _loaded(tmp_path: Path, *args: str) -> set[str]:
    env = {
        **os.environ,
        "BGPROC_DATABASE_URL": f"sqlite:///{tmp_path / 'startup.db'}",
        "BGPROC_KEY_PREFIX": "bgproc-test-startup:",
        "BGPROC_TIMEZONE": "Europe/Madrid",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return set(report["loaded"])


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("request", "--help"), ("monitor", "list", "--help"),
     ("web", "--help"), ("monitor", "rerun", "--help"), ("request", "run", "--help")],
)
def test_help_loads_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert _loaded(tmp_path, *args) == set()


def test_preview_loads_no_service_library(tmp_path: Path) -> None:
    args = ("preview", "--timing", "scheduled", "--frequency", "cron", "--cron", "0 15 10 ? * 6#3")
    assert _loaded(tmp_path, *args) & SERVICES == set()


@pytest.mark.parametrize(
    "args",
    [
        ("request", "list"),
        ("monitor", "list"),
        ("monitor", "stats"),
        ("group", "list"),
        ("processes",),
    ],
)
def test_listings_load_no_celery_and_no_alembic(tmp_path: Path, args: tuple[str, ...]) -> None:
    _loaded(tmp_path, "db", "upgrade")  # a schema at head: the check then reads one row
    assert _loaded(tmp_path, *args) & {"celery", "kombu", "redbeat", "alembic", PG_DIALECT,
                                       *WEB} == set()  # fmt: skip


def test_the_revision_checked_without_alembic_is_alembics_head() -> None:
    assert head_revisions() == {SCHEMA_REVISION}
