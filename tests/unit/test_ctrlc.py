"""Ctrl-C in a live view is a flag the loop waits on, not an exception that can be lost."""

from __future__ import annotations

import os
import signal
import time
import weakref

import click
import pytest

from cli.ctrlc import CtrlC


class _Resource:
    pass


def test_ctrl_c_inside_clean_up_code_still_ends_the_view_with_130() -> None:
    before = signal.getsignal(signal.SIGINT)
    resource = _Resource()
    # A finalizer is where a KeyboardInterrupt would be printed as "Exception ignored"
    weakref.finalize(resource, os.kill, os.getpid(), signal.SIGINT)
    with pytest.raises(click.exceptions.Exit) as ended, CtrlC() as ctrl_c:
        del resource
        began = time.monotonic()
        assert ctrl_c.wait(10)  # woken at once, not after the 10 s
        assert time.monotonic() - began < 5
    assert ended.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before


def test_without_ctrl_c_the_wait_is_the_whole_interval_and_nothing_is_raised() -> None:
    with CtrlC() as ctrl_c:
        assert not ctrl_c.wait(0.05)
