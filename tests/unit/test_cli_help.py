"""Bare ``bgproc`` and its bare command groups print their help and exit 0 (they used to
print the help as a one-line error, with literal ``\\n``, and exit 2); ``python -m bgproc``
is the command too. Help touches no service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.runtime import celery_argv

REPO = Path(__file__).resolve().parents[2]


def bgproc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BGPROC_")}
    env["PYTHONPATH"] = str(REPO)
    env["BGPROC_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens: help needs no Redis
    return subprocess.run([sys.executable, "-m", "bgproc", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("group", [(), ("request",), ("monitor",), ("group",), ("db",)],
                         ids=lambda g: " ".join(("bgproc", *g)))  # fmt: skip
def test_a_bare_group_prints_its_help_and_exits_0(tmp_path: Path, group: tuple[str, ...]) -> None:
    done = bgproc(tmp_path, *group)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {' '.join(('bgproc', *group))} "), done.stdout
    assert "Commands:" in done.stdout and "\\n" not in done.stdout
    assert done.stderr == ""


def test_python_m_bgproc_is_the_command(tmp_path: Path) -> None:
    done = bgproc(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.startswith("bgproc, version "), done


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("worker", ["-c, --concurrency N", "-Q, --queues", "-n, --hostname", "-l, --loglevel"]),
        ("up", ["-c, --concurrency N", "-Q, --queues", "-n, --hostname", "-l, --loglevel"]),
        ("beat", ["-l, --loglevel"]),
    ],
)
def test_the_services_list_their_common_options_and_pass_on_the_rest(
    tmp_path: Path, command: str, options: list[str]
) -> None:
    done = bgproc(tmp_path, command, "--help")
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout, done.stdout
    celery = "worker" if command == "up" else command
    assert f"Any other option of `celery {celery}`" in done.stdout, done.stdout


def test_declared_options_reach_celery_under_its_own_names() -> None:
    given = {"concurrency": 4, "queues": "billing", "hostname": None, "loglevel": "INFO"}
    argv = celery_argv("worker", given, ["--pool", "solo"])
    assert argv == ["worker", "--concurrency=4", "--queues=billing", "--loglevel=INFO",
                    "--pool", "solo"]  # fmt: skip
