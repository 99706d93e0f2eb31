"""A process with a secret parameter, registered through BGPROC_IMPORTS by the monitor tests."""

from __future__ import annotations

from bgproc import ProcessContext, Secret, process


@process("test.secret", description="Use a token that no output may show")
def use_token(ctx: ProcessContext, token: Secret, user: str = "ana") -> None:
    ctx.log.info("token used for %s", user)
