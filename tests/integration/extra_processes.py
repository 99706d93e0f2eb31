"""A module of processes registered only through BGPROC_IMPORTS (tests of that variable)."""

from __future__ import annotations

from bgproc import ProcessContext, process


@process("extra.hello", description="Say hello", queue="extra")
def hello(ctx: ProcessContext, name: str) -> str:
    return f"hello {name}"


@process("extra.invoice", description="Bill a customer")
def invoice(ctx: ProcessContext, customer: str, amount: float) -> str:
    return f"{customer}: {amount:.2f}"
