"""Processes of the run-status tests, registered in workers through ``BGPROC_IMPORTS``."""

from __future__ import annotations

import os
import time

from bgproc import ProcessContext, process


@process("faults.stubborn", description="Sleep without ever looking for a kill (not killable)")
def stubborn(ctx: ProcessContext, seconds: float = 30.0) -> None:
    ctx.log.info("stubborn for %s s", seconds)
    time.sleep(seconds)


@process("faults.overrun", description="Overrun its hard time limit", time_limit_s=2)
def overrun(ctx: ProcessContext, seconds: float = 60.0) -> None:
    ctx.log.info("overrunning")
    time.sleep(seconds)


@process("faults.pid", description="Log the pool child's pid, then sleep")
def pid(ctx: ProcessContext, seconds: float = 2.0) -> dict[str, int]:
    ctx.log.info("pid %d", os.getpid())
    time.sleep(seconds)
    return {"pid": os.getpid()}
