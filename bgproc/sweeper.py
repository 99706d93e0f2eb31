"""The sweep: runs whose worker stopped renewing their lease are marked ``lost``.

A pool child killed by a hard time limit or a signal is reported by its worker's main
process (:class:`bgproc.runner.RunRequest`); a worker killed whole, or a host that
vanished, reports nothing. Its runs' leases (see :mod:`bgproc.recorder`) then expire,
and any worker's housekeeping (:mod:`bgproc.worker`) marks them ``lost`` — Etendo's
"System Restart". Several sweeps may run at once: each expired lease is claimed by
exactly one (ZREM answers 1 to one caller only).
"""

from __future__ import annotations

import logging
from datetime import datetime

from redis import Redis

from bgproc.models import RunStatus
from bgproc.runs import RunStore

logger = logging.getLogger("bgproc.sweeper")
CLAIM_BATCH = 500


def sweep(runs: RunStore, redis: Redis, leases_key: str, now: datetime) -> list[int]:
    """Mark every run whose lease expired before ``now`` as lost; their ids."""
    expired = redis.zrangebyscore(leases_key, "-inf", now.timestamp(), start=0, num=CLAIM_BATCH)
    claimed = [int(member) for member in expired if redis.zrem(leases_key, member)]
    for run_id in claimed:
        runs.close_open(
            run_id,
            "",
            RunStatus.lost,
            now,
            "lost: its worker stopped reporting (killed, or its host vanished) while it ran",
        )
    if claimed:
        logger.warning("sweeper: runs %s marked lost (no lease renewal)", claimed)
    return claimed
