"""A process that fails telling a digest of its secret, never the secret: a run of it shows
which token it was given. Registered through ``BGPROC_IMPORTS`` by tests/e2e/test_reruns.py."""

from __future__ import annotations

import hashlib

from bgproc import ProcessContext, Secret, process


@process("rerun.digest", description="Fail, naming the digest of its token")
def digest(ctx: ProcessContext, token: Secret, day: str) -> None:
    told = hashlib.sha256(token.encode()).hexdigest()[:12]
    raise RuntimeError(f"closing {day} refused; token digest {told}")
