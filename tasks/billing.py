"""The README's "Writing a process" example, registered so the README's tour can use it."""

from __future__ import annotations

from bgproc import ProcessContext, Secret, process


@process(
    "billing.close_day",
    description="Close the accounting day",
    prevent_concurrent=True,
    killable=True,
    queue="billing",
    time_limit_s=600,
)
def close_day(ctx: ProcessContext, day: str, token: Secret, retries: int = 3) -> dict:
    ctx.log.info("closing %s", day)  # goes to the Process Log
    print("ledger checked")  # captured too
    ctx.progress(1, 2, "ledger checked")  # shown live, with a rate and the time left
    if ctx.should_stop():  # a kill asked for: return early
        return {"stopped": True}
    return {"closed": day}  # a JSON-able result, stored with the run
