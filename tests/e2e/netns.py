"""Several machines on one: network namespaces on a bridge, with Redis and PostgreSQL on one.

A :class:`Lab` is built by the test itself (it needs root): a server namespace holding a
bridge, a private ``redis-server`` and a private PostgreSQL cluster; one namespace per
host, each joined to the bridge by a veth pair; and one more veth that puts the test
process itself (the operator's console) on the same subnet, so the ``bgproc`` CLI and the
test's own reads reach the services over TCP like any other host. A host is cut off by
setting its bridge port down: to its processes the network falls silent, as when a cable
is pulled — no reset, no error, just no answer.

Every name carries the id of the process that made it: a test run killed before its
teardown leaves namespaces and directories that :func:`sweep_stale` (called by the next
lab, and by ``.ci/test`` on exit) recognises and removes. Run as a module to sweep.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import create_engine

PREFIX = "bgp-"  # every namespace and temporary directory of a lab starts with it
THIRD_OCTETS = range(213, 233)  # 10.213.<n>.0/24 ... the first not routed on the machine yet
REDIS_PORT = 6379
PG_PORT = 5432
DATABASE = "bgproc"
START_TIMEOUT_S = 60  # initdb + start of PostgreSQL on a loaded 2-core machine
STOP_TIMEOUT_S = 20
_OWNER = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def _run(*args: str, timeout_s: float = START_TIMEOUT_S) -> str:
    """Run a command to its end; its stdout, or a failure with its stderr."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class LabError(RuntimeError):
    """A namespace, link or service of the lab could not be made."""


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout), if any."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found = [p for p in found if (p / "pg_ctl").exists() and p.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name), default=None)


def why_not() -> str | None:
    """Why a lab cannot be built on this machine, or None when it can (probably)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "redis-server", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if pg_bin() is None:
        return "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (initdb, pg_ctl)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user to own a private PostgreSQL cluster"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]


def _kill_inside(netns: str) -> None:
    """SIGKILL every process still in a namespace (it is only freed when they are gone)."""
    with contextlib.suppress(LabError):
        for pid in _run("ip", "netns", "pids", netns).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _remove_namespace(netns: str) -> None:
    _kill_inside(netns)
    with contextlib.suppress(LabError):
        _run("ip", "netns", "delete", netns)


def _remove_link(name: str) -> None:
    """Delete a veth now (its peer goes too): a namespace holding TCP sockets that still
    retransmit into a cut link lives on for minutes, and its links with it."""
    with contextlib.suppress(LabError):
        _run("ip", "link", "delete", name)


def sweep_stale() -> list[str]:
    """Remove namespaces, console links and directories of labs whose creator is gone."""
    swept: list[str] = []
    for line in _run("ip", "-o", "link", "show").splitlines():
        owner = re.search(rf"^\d+: ([^:@]+).*\balias ({re.escape(PREFIX)}\S+)", line)
        if owner and (pid := _OWNER.match(owner[2])) and not _alive(int(pid[1])):
            _remove_link(owner[1])
            swept.append(owner[1])
    for netns in _namespaces():
        owner = _OWNER.match(netns)
        if owner and not _alive(int(owner[1])):
            _remove_namespace(netns)
            swept.append(netns)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = _OWNER.match(path.name)
        if owner and not _alive(int(owner[1])):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(str(path))
    return swept


def _free_subnet() -> str:
    """A /24 that no route of the machine covers yet but the default (another lab's included)."""
    for third in THIRD_OCTETS:
        subnet = f"10.{third}.77"
        routes = _run("ip", "-4", "route", "show", "to", "match", f"{subnet}.1").split("\n")
        if all(not r.strip() or r.startswith("default") for r in routes):
            return subnet
    raise LabError("every candidate subnet 10.213-232.77.0/24 is already routed here")


@dataclass(frozen=True)
class Host:
    """One machine of the lab: a namespace with an address on the lab's subnet."""

    name: str
    netns: str
    address: str

    @property
    def via(self) -> tuple[str, ...]:
        """The prefix that runs a command on this host."""
        return ("ip", "netns", "exec", self.netns)


class Lab:
    """A server namespace (bridge, Redis, PostgreSQL), host namespaces, and the console link."""

    def __init__(self, host_names: tuple[str, ...]) -> None:
        sweep_stale()
        self.tag = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.dir.chmod(0o755)  # PostgreSQL runs as postgres: it must reach its directory
        self.subnet = _free_subnet()
        self.server = Host("srv", f"{self.tag}-srv", f"{self.subnet}.1")
        self.hosts = {
            name: Host(name, f"{self.tag}-{name}", f"{self.subnet}.{10 + number}")
            for number, name in enumerate(host_names, start=1)
        }
        self.console = f"bgp{self.tag[-6:]}"  # the test's own link (root namespace; <= 15)
        self.cuts = 0
        self._namespaces: list[str] = []
        self._redis: subprocess.Popen[bytes] | None = None
        self._pgdata = self.dir / "pgdata"

    @property
    def broker_url(self) -> str:
        return f"redis://{self.server.address}:{REDIS_PORT}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.server.address}:{PG_PORT}/{DATABASE}"

    # -- the network ------------------------------------------------------------------

    def build(self) -> None:
        """Namespaces, the bridge and its ports; every ``lo`` up."""
        srv = self.server.netns
        for netns in (srv, *(h.netns for h in self.hosts.values())):
            _run("ip", "netns", "add", netns)
            self._namespaces.append(netns)
            _run("ip", "-n", netns, "link", "set", "lo", "up")
        _run("ip", "-n", srv, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", srv, "addr", "add", f"{self.server.address}/24", "dev", "br0")
        _run("ip", "-n", srv, "link", "set", "br0", "up")
        for host in self.hosts.values():
            # the bridge port in srv is named after the host; the host sees eth0
            _run("ip", "-n", srv, "link", "add", host.name, "type", "veth",
                 "peer", "name", "eth0", "netns", host.netns)
            _run("ip", "-n", srv, "link", "set", host.name, "master", "br0", "up")
            _run("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _run("ip", "-n", host.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", srv, "link", "add", "console", "type", "veth",
             "peer", "name", self.console, "netns", str(os.getpid()))
        _run("ip", "-n", srv, "link", "set", "console", "master", "br0", "up")
        _run("ip", "link", "set", self.console, "alias", self.tag)  # the owner, for the sweep
        _run("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.console)
        _run("ip", "link", "set", self.console, "up")

    def cut(self, host: Host) -> None:
        """Pull the host's cable at the bridge: its packets go nowhere, nobody is told."""
        _run("ip", "-n", self.server.netns, "link", "set", host.name, "down")
        self.cuts += 1

    # -- the services -----------------------------------------------------------------

    def start_redis(self) -> None:
        """A private redis-server on the server's address, configured as the guide says;
        returns once it answers (from the console)."""
        log = (self.dir / "redis.log").open("ab")
        self._redis = subprocess.Popen(
            [*self.server.via, "redis-server", "--bind", self.server.address,
             "--port", str(REDIS_PORT), "--protected-mode", "no", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", str(self.dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        client = redis.Redis(host=self.server.address, port=REDIS_PORT, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self._redis.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.dir / "redis.log").read_text(errors="replace")
                        raise LabError(f"redis-server did not answer:\n{log_text}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def start_postgres(self) -> None:
        """A private cluster: initdb as postgres, trust for the subnet, pg_ctl start."""
        binaries = pg_bin()
        assert binaries is not None
        self._pgdata.mkdir(mode=0o700)
        shutil.chown(self._pgdata, "postgres", "postgres")
        as_postgres = ("runuser", "-u", "postgres", "--")
        _run(*as_postgres, str(binaries / "initdb"), "-D", str(self._pgdata), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-sync")
        with (self._pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet}.0/24 trust\n")
        options = " ".join((
            f"-c listen_addresses={self.server.address}", f"-p {PG_PORT}",
            f"-c unix_socket_directories={self._pgdata}",
            "-c fsync=off",  # a throwaway cluster: speed over durability
            # as the deployment guide advises: a vanished host's transaction ends
            "-c idle_in_transaction_session_timeout=30s", "-c tcp_keepalives_idle=30",
            "-c tcp_keepalives_interval=10", "-c tcp_keepalives_count=3",
        ))
        _run(*self.server.via, *as_postgres, str(binaries / "pg_ctl"), "-D", str(self._pgdata),
             "-l", str(self._pgdata / "postgres.log"), "-w", "-t", str(START_TIMEOUT_S),
             "-o", options, "start")
        admin = create_engine(
            f"postgresql+psycopg://postgres@{self.server.address}:{PG_PORT}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
        finally:
            admin.dispose()

    def connections(self) -> dict[str, int]:
        """PostgreSQL connections to the installation's database, by host (for the guide)."""
        names = {h.address: h.name for h in self.hosts.values()}
        names[f"{self.subnet}.254"] = "console"
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                rows = connection.exec_driver_sql(
                    "SELECT host(client_addr), count(*) FROM pg_stat_activity"
                    f" WHERE datname = '{DATABASE}' GROUP BY 1"
                ).all()
        finally:
            engine.dispose()
        return {names.get(address, address): count for address, count in rows}

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the services, kill what is left in the namespaces, delete them and the files."""
        binaries = pg_bin()
        if binaries is not None and (self._pgdata / "postmaster.pid").exists():
            with contextlib.suppress(LabError, subprocess.TimeoutExpired):
                _run("runuser", "-u", "postgres", "--", str(binaries / "pg_ctl"), "-D",
                     str(self._pgdata), "-m", "immediate", "-w", "stop", timeout_s=STOP_TIMEOUT_S)
        if self._redis is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._redis.pid, signal.SIGKILL)
            self._redis.wait(timeout=STOP_TIMEOUT_S)
        _remove_link(self.console)
        for netns in self._namespaces:
            _remove_namespace(netns)
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__" and os.geteuid() == 0 and shutil.which("ip"):
    for gone in sweep_stale():
        print(f"swept {gone}")
