"""The no-op process of ``bench.bench_throughput`` (``BGPROC_IMPORTS=bench.noop_processes``)."""

from __future__ import annotations

from bgproc import ProcessContext, process


@process("bench.noop", description="Do nothing: measures what running and recording a run costs")
def noop(ctx: ProcessContext) -> None:
    return None
