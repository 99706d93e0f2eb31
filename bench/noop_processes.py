"""The processes of the benchmarks (``BGPROC_IMPORTS=bench.noop_processes``): the no-op of
``bench.bench_throughput``, and the long run that ``bench.bench_web``'s clients follow, on a
queue of its own so that it never takes a slot of the worker being measured."""

from __future__ import annotations

from bgproc import ProcessContext, process


@process("bench.noop", description="Do nothing: measures what running and recording a run costs")
def noop(ctx: ProcessContext) -> None:
    return None


@process(
    "bench.ticker",
    description="Log a line and report progress every second until killed: a run to follow",
    killable=True,
    queue="bench-ticker",
)
def ticker(ctx: ProcessContext, seconds: int = 3600) -> None:
    for second in range(1, seconds + 1):
        if ctx.sleep(1.0):
            return
        ctx.log.info("tick %d", second)
        ctx.progress(second, seconds, "ticking")
