"""Processes of the Process Log tests, registered in workers through ``BGPROC_IMPORTS``."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from celery.utils.log import get_task_logger

from bgproc import ProcessContext, process

TASK_LOGGER = "logtest.task"


@process("logtest.mixed", description="Write through every channel the Process Log captures")
def mixed(ctx: ProcessContext, marker: str = "m", rounds: int = 1, pause: float = 0.0) -> Any:
    """Each round: context logger, a library logger, print, stderr, Celery's task logger."""
    for number in range(rounds):
        ctx.log.info("%s ctx %d", marker, number)
        logging.getLogger("some.lib").warning("%s lib %d", marker, number)
        print(f"{marker} print {number}")
        sys.stderr.write(f"{marker} stderr {number}\n")
        get_task_logger(TASK_LOGGER).info("%s task %d", marker, number)
        if pause:
            time.sleep(pause)
    return {"rounds": rounds}
