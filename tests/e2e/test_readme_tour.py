"""The README's tour runs as written: every command of the ```sh block under "## A tour",
in order, as the ``bgproc`` console script, against the real Redis (a key prefix of its
own) and a SQLite file that does not exist yet, as a new user has it.

The block is read as a shell would: backslash-continued lines joined, a ``# comment``
dropped, ``a && b`` run as ``a`` then ``b``. Every command must exit 0 (the tour shows no
refusal), except those that do not end by themselves, run as a person runs them:

- ``bgproc up``, ``worker``, ``beat`` and ``web`` start in the background (another terminal) and
  are awaited until they are going before the next command (``up --web``: its web server
  too); they run to the tour's end, then get SIGTERM and must exit 0.
- a command whose comment says ``(Ctrl-C ends)`` runs on a terminal of its own until it
  has printed something, then gets SIGINT (Ctrl-C) and must exit 130.

No command, and no service, may print a traceback.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import BGPROC, CLI_TIMEOUT_S, READY_TIMEOUT_S, STOP_DEADLINE_S, Proc, Stack
from tests.readme import readme_block
from tests.waiting import wait_until

SCRIPT = Path(sys.executable).with_name("bgproc")  # the console script, as the README types it
CTRL_C = "(Ctrl-C ends)"
WORKER_READY = re.compile(r" ready\.")
BEAT_READY = re.compile(r"beat: (Acquired lock|another beat holds the lock)")
SERVICES = {  # what each service logs once it is going
    "up": (WORKER_READY, BEAT_READY),
    "worker": (WORKER_READY,),
    "beat": (BEAT_READY,),
    "web": (re.compile(r"bgproc web: "),),
}
SERVICES["up --web"] = (*SERVICES["up"], *SERVICES["web"])
TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Command:
    """One command of the tour, and the comment of its line."""

    argv: tuple[str, ...]
    comment: str

    def __str__(self) -> str:
        return shlex.join(self.argv)


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its comment: from a ``#`` that starts a word outside quotes."""
    quote = ""
    for at, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (at == 0 or line[at - 1].isspace()):
            return line[:at], line[at + 1 :].strip()
    return line, ""


def commands_of(block: str) -> list[Command]:
    """A block of shell lines as the commands it runs, in order."""
    commands: list[Command] = []
    for line in block.replace("\\\n", " ").splitlines():
        text, comment = split_comment(line)
        chain: list[str] = []
        for word in [*shlex.split(text), "&&"]:
            if word != "&&":
                chain.append(word)
            elif chain:
                commands.append(Command(tuple(chain), comment))
                chain = []
    return commands


def tour() -> list[Command]:
    return commands_of(readme_block("## A tour", "sh"))


def bgproc(command: Command) -> list[str]:
    """The command line to start: the console script if it is installed (it is in .venv)."""
    assert command.argv[0] == "bgproc", f"not a bgproc command: {command}"
    launcher = [str(SCRIPT)] if SCRIPT.exists() else BGPROC
    return [*launcher, *command.argv[1:]]


def run(stack: Stack, command: Command) -> None:
    """A command that ends by itself: exit 0, no traceback."""
    done = subprocess.run(
        bgproc(command),
        cwd=stack.tmp_path,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    said = f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, said
    assert TRACEBACK not in done.stdout + done.stderr, said


def start(stack: Stack, command: Command, number: int) -> Proc:
    """A service, in the background, logging to a file of its own."""
    log = stack.tmp_path / f"{number:02d}-{command.argv[1]}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            bgproc(command),
            cwd=stack.tmp_path,
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Proc(str(command), popen, log)
    stack.procs.append(proc)  # stopped at teardown whatever happens; its log shown on failure
    return proc


def await_going(proc: Proc, service: str) -> None:
    """Until the service logs that it is going; it must not have died meanwhile."""

    def going() -> bool:
        text = proc.text()
        assert proc.alive(), f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}"
        return all(needle.search(text) for needle in SERVICES[service])

    wait_until(going, READY_TIMEOUT_S, 0.1, f"{proc.name} to be going")


def _read(fd: int) -> bytes:
    """What the terminal has for us now (nothing once the other side has closed)."""
    try:
        return os.read(fd, 65536) if select.select([fd], [], [], 0)[0] else b""
    except OSError:  # EIO: the command has exited and its terminal is closed
        return b""


def interrupt(stack: Stack, command: Command) -> None:
    """A command that runs until Ctrl-C, on a terminal as in a person's shell (a live view
    draws there at once, not only at its end): once it printed, SIGINT; it must exit 130."""
    leader, follower = pty.openpty()
    try:
        popen = subprocess.Popen(
            bgproc(command),
            cwd=stack.tmp_path,
            env=stack.env,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )
    finally:
        os.close(follower)
    shown = bytearray()
    try:

        def printed() -> bool:
            shown.extend(_read(leader))
            code = popen.poll()
            assert code is None, f"{command} exited {code}:\n{shown.decode(errors='replace')}"
            return bool(shown.strip())

        wait_until(printed, READY_TIMEOUT_S, 0.1, f"{command} to print")
        popen.send_signal(signal.SIGINT)

        def exited() -> bool:
            shown.extend(_read(leader))
            return popen.poll() is not None

        wait_until(exited, STOP_DEADLINE_S, 0.05, f"{command} to end on Ctrl-C")
        shown.extend(_read(leader))
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        os.close(leader)
    said = f"{command} exited {popen.returncode} on Ctrl-C:\n{shown.decode(errors='replace')}"
    assert popen.returncode == 130, said
    assert TRACEBACK.encode() not in shown, said


def test_shell_lines_are_read_as_a_shell_would() -> None:
    block = (
        'bgproc preview --cron "0 15 10 ? * 6#3" \\\n'
        "       --tz Europe/Madrid       # a quoted # starts no comment\n"
        "\n"
        "bgproc request unschedule 1 && bgproc request delete 1\n"
        "bgproc monitor watch           # a live view (Ctrl-C ends)\n"
    )
    assert commands_of(block) == [
        Command(("bgproc", "preview", "--cron", "0 15 10 ? * 6#3", "--tz", "Europe/Madrid"),
                "a quoted # starts no comment"),
        Command(("bgproc", "request", "unschedule", "1"), ""),
        Command(("bgproc", "request", "delete", "1"), ""),
        Command(("bgproc", "monitor", "watch"), "a live view (Ctrl-C ends)"),
    ]  # fmt: skip


def test_the_readme_tour_runs_as_written(fresh_stack: Stack) -> None:
    stack = fresh_stack
    services: list[Proc] = []
    starting: list[tuple[Proc, str]] = []  # consecutive services start together
    began = time.monotonic()
    for number, command in enumerate(tour(), 1):
        name = command.argv[1]
        if name in SERVICES:
            service = f"{name} --web" if "--web" in command.argv else name
            starting.append((start(stack, command, number), service))
            continue
        for proc, service in starting:
            await_going(proc, service)
        services += [proc for proc, _ in starting]
        starting.clear()
        if CTRL_C in command.comment:
            interrupt(stack, command)
        else:
            run(stack, command)
    assert not starting, "the tour ends by starting a service that nothing uses"
    assert services, "the tour starts no worker or beat"

    for proc in services:
        proc.terminate()
    deadline = time.monotonic() + STOP_DEADLINE_S
    for proc in services:
        proc.reap(deadline)
        assert proc.popen.returncode == 0, f"{proc.name} exited {proc.popen.returncode}"
        assert TRACEBACK not in proc.text(), f"{proc.name}:\n{proc.text()}"
    print(f"the tour took {time.monotonic() - began:.1f} s")
