"""Ctrl-C for the commands that run until it (``monitor watch``, ``monitor log --follow``).

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be; where
that is a library's clean-up code (a finalizer the collector runs, a callback) it is printed
as "Exception ignored" and lost, and the command went on. Here SIGINT only sets a flag that
the loop waits on between its rounds; the command then ends with 130, as a shell expects.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

import click


class CtrlC:
    """Within ``with CtrlC() as ctrl_c:``, Ctrl-C sets a flag; leaving it then exits 130."""

    def __init__(self) -> None:
        self._pressed = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, lambda *_: self._pressed.set())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.signal(signal.SIGINT, self._previous)
        if self._pressed.is_set() and error is None:
            raise click.exceptions.Exit(130)  # Ctrl-C ends a live view: not an error

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less if Ctrl-C comes; whether it came."""
        return self._pressed.wait(seconds)
