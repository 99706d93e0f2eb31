"""The four sample processes of design §7, used by the demo and the tests."""

from __future__ import annotations

import time
from typing import Any

from bgproc import ProcessContext, process


@process("sample.echo", description="Log the parameters it is given and return them")
def echo(ctx: ProcessContext, **params: str) -> dict[str, Any]:
    ctx.log.info("echo %s", params)
    return params


@process(
    "sample.sleep",
    description="Sleep, logging each second and reporting progress; stops early when killed",
    killable=True,
)
def sleep(ctx: ProcessContext, seconds: float = 1.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    second = 0
    ctx.progress(0, seconds, "sleeping")
    while (left := deadline - time.monotonic()) > 0:
        if ctx.sleep(min(1.0, left)):
            ctx.log.info("stopped after %d s", second)
            return {"slept": second, "stopped": True}
        second += 1
        ctx.log.info("slept %d s", second)
        ctx.progress(min(second, seconds), seconds, "sleeping")
    return {"slept": seconds, "stopped": False}


@process("sample.fail", description="Raise an error on purpose")
def fail(ctx: ProcessContext, message: str = "failed on purpose") -> None:
    ctx.log.info("about to fail")
    raise RuntimeError(message)


@process("sample.spam", description="Write many log lines")
def spam(ctx: ProcessContext, lines: int = 1000) -> dict[str, int]:
    for number in range(1, lines + 1):
        ctx.log.info("line %d of %d", number, lines)
    return {"lines": lines}
