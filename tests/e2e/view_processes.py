"""A process of the Celery-view test (test_celery_view.py), imported via ``BGPROC_IMPORTS``."""

from __future__ import annotations

from bgproc import ProcessContext, process


@process("view.single", description="Sleep until killed; never two at once",
         prevent_concurrent=True, killable=True)
def single(ctx: ProcessContext, seconds: float = 60.0) -> None:
    """A second run while one goes is ``skipped``: what Celery shows as ignored."""
    ctx.sleep(seconds)
