"""``bgproc up --web``: the web windows beside the worker and beat, in up's process tree.

It answers once up is going (its /metrics tells the worker, the beat and a run), comes back
when it dies, stops when up stops (exit 0), and goes when up is killed outright.
"""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import STOP_DEADLINE_S, WORKER_OPTIONS, Proc, Stack
from tests.e2e.services import free_port
from tests.waiting import wait_until

TOKEN = "e2e-up-web-token"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def web_child(up: Proc) -> int | None:
    """The pid of up's ``bgproc web`` child, if it has one now."""
    for pid in children(up.pid):
        with suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"web" in argv and b"bgproc" in argv:
                return pid
    return None


def gone(pid: int) -> bool:
    """Exited (and reaped, or a zombie waiting for a parent that will reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def answers(url: str) -> bool:
    try:
        return get(url + "/api/v1/processes")[0] == 200
    except OSError:
        return False


def start_up(stack: Stack, port: int) -> Proc:
    proc = stack.spawn("up", "up", "--web", "--bind", f"127.0.0.1:{port}", "--concurrency", "2",
                       "-n", "up@%h", *WORKER_OPTIONS, env={"BGPROC_WEB_TOKEN": TOKEN})  # fmt: skip
    for needle in (" ready.", "beat: Acquired lock", f"bgproc web: http://127.0.0.1:{port}/"):
        proc.wait_log(needle)
    return proc


def test_up_web_serves_beside_worker_and_beat_and_stops_with_up(stack: Stack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = start_up(stack, port)
    wait_until(lambda: answers(url), 30, 0.1, "the web windows to answer")
    first = web_child(up)
    assert first is not None, "bgproc web is not a child of up"

    # It sees what up runs: /metrics has the worker, the beat and a run
    stack.cli("run", "sample.echo", "--wait", "--timeout", "30")

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = get(url + "/metrics")
        assert status == 200, text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    metrics = wait_until(lambda: (m := scraped())[("bgproc_workers", ())] == 1 and m, 20, 0.2,
                         "the worker in /metrics")  # fmt: skip
    assert metrics[("bgproc_beat_lock_held", ())] == 1
    runs = ("bgproc_recent_runs", (("process", "sample.echo"), ("status", "success")))
    assert metrics[runs] == 1

    # Killed, it comes back; up goes on
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: web_child(up) not in (None, first) and answers(url), 30, 0.2,
               "a new bgproc web")  # fmt: skip
    assert up.alive() and "the web server exited" in up.text()

    # up stops: the web server with it, and up exits 0
    second = web_child(up)
    assert second is not None
    up.terminate()
    up.popen.wait(STOP_DEADLINE_S)
    assert up.popen.returncode == 0, up.tail()
    assert gone(second) and not answers(url)
    assert "Traceback" not in up.text()


def test_up_killed_outright_takes_its_web_server_along(stack: Stack) -> None:
    port = free_port()
    up = start_up(stack, port)
    child = wait_until(lambda: web_child(up), 30, 0.1, "bgproc web under up")
    os.kill(up.pid, signal.SIGKILL)  # the main process only: nothing of ours runs to clean up
    up.popen.wait(STOP_DEADLINE_S)
    wait_until(lambda: gone(child), 10, 0.1, "bgproc web to go with up")


def test_up_web_off_loopback_without_a_token_is_refused_before_starting(stack: Stack) -> None:
    refused = stack.cli("up", "--web", "--bind", "0.0.0.0:8765", check=False)
    assert refused.code == 2
    assert refused.err.strip().splitlines() == [
        "Error: bind: 0.0.0.0 is not a loopback address: set BGPROC_WEB_TOKEN or "
        "BGPROC_WEB_USERS_FILE to serve it"
    ]
