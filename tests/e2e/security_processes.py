"""A process that lets its secret out every way it can, registered through ``BGPROC_IMPORTS``."""

from __future__ import annotations

import logging
import sys

from celery.utils.log import get_task_logger

from bgproc import ProcessContext, Secret, process


@process("security.leaky", description="Log, print, raise and return its secret token")
def leaky(ctx: ProcessContext, token: Secret, fail: bool = False) -> dict[str, str]:
    ctx.log.info("token is %s", token)
    logging.getLogger("some.lib").warning("Authorization: Bearer %s", token)
    print(f"printed {token}")
    sys.stderr.write(f"stderr {token}\n")
    get_task_logger("security.task").info("task logger %s", token)
    if fail:
        raise ValueError(f"rejected token {token}")
    return {"echo": str(token)}
