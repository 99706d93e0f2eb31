"""Private Redis and PostgreSQL servers that a fault test may kill and restart.

The machine's own servers are shared by every test (and by other sessions): a test that
breaks a server starts its own, on a free port, in a temporary folder, and removes it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import redis

from tests.waiting import wait_until

START_TIMEOUT_S = 60
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, without persistence: a restart loses every key."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bgproc-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            with suppress(redis.RedisError):
                return bool(client.ping())
            return False

        wait_until(answers, START_TIMEOUT_S, 0.05, "the private Redis to answer")
        client.close()

    def stop_with_data(self) -> None:
        """SHUTDOWN SAVE: the next :meth:`start` loads every key (expired ones go)."""
        client = redis.Redis.from_url(self.url)
        with suppress(redis.ConnectionError):
            client.shutdown(save=True)
        client.close()
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None

    def restart_with_data(self, down_s: float) -> None:
        """A restart that keeps the data, after ``down_s`` seconds away."""
        self.stop_with_data()
        time.sleep(down_s)
        self.start()

    def kill(self) -> None:
        """SIGKILL: a crash, every key lost."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb as the ``postgres`` user), trust auth."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bgproc-pg-"))
        self.data = self.folder / "data"
        self.bin = PG_BIN[-1]
        shutil.chown(self.folder, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       capture_output=True, timeout=START_TIMEOUT_S)  # fmt: skip

    def init(self) -> None:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")  # fmt: skip
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                          "-l", str(self.folder / "log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: every connection dropped at once, as in a crash."""
        with suppress(subprocess.CalledProcessError):
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                              "stop")  # fmt: skip

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_s(seconds: float) -> None:
    """Let an outage last: the fault itself, not a wait for an effect."""
    time.sleep(seconds)


def have_postgres_binaries() -> bool:
    return bool(PG_BIN) and shutil.which("runuser") is not None
