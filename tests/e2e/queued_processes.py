"""Processes on queues of their own, registered through ``BGPROC_IMPORTS`` (routing tests)."""

from __future__ import annotations

import time
from typing import Any

from bgproc import ProcessContext, process


@process("billing.invoice", description="Issue an invoice (billing workers only)", queue="billing")
def invoice(ctx: ProcessContext, number: int = 0) -> dict[str, Any]:
    ctx.log.info("invoice %d", number)
    return {"invoice": number}


@process("pinned.sleep", description="Sleep on the one host that consumes 'pinned'",
         queue="pinned", killable=True)
def pinned_sleep(ctx: ProcessContext, seconds: float = 1.0) -> dict[str, Any]:
    """A long run that the test can place on a chosen host, then cut that host off."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.should_stop():
            return {"stopped": True}
        time.sleep(min(1.0, left))
        ctx.log.info("%.0f s left", max(left - 1, 0))
    return {"slept": seconds}
