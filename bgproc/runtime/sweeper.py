"""The sweeps: runs whose worker stopped renewing their lease are marked ``lost``; queued
runs past their start deadline, ``expired``.

A pool child killed by a hard time limit or a signal is reported by its worker's main
process (:class:`bgproc.runtime.runrequest.RunRequest`); a worker killed whole, or a host that
vanished, reports nothing. Its runs' leases (see :mod:`bgproc.runtime.recorder`) then expire,
and any worker's housekeeping (:mod:`bgproc.runtime.worker`) marks them ``lost`` — Etendo's
"System Restart". Several sweeps may run at once: each expired lease is claimed by
exactly one (ZREM answers 1 to one caller only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from redis import Redis

from bgproc.statuses import RunStatus
from bgproc.store.runs import RunStore

logger = logging.getLogger("bgproc.sweeper")
CLAIM_BATCH = 500
UNSENT_SETTLE_S = 1.0  # longer than the recorder's batch interval, with room for a busy host
UNSENT_BATCH = 200  # the oldest queued runs looked for in the broker, per sweep
UNSENT = (
    "lost: queued, but its message never reached a worker (its publisher died, or "
    "Redis lost it)"
)


def sweep(runs: RunStore, redis: Redis, leases_key: str, now: datetime) -> list[int]:
    """Mark every run whose lease expired before ``now`` as lost; their ids."""
    expired = redis.zrangebyscore(leases_key, "-inf", now.timestamp(), start=0, num=CLAIM_BATCH)
    claimed = [int(member) for member in expired if redis.zrem(leases_key, member)]
    for done, run_id in enumerate(claimed):
        try:
            runs.close_open(
                run_id,
                "",
                RunStatus.lost,
                now,
                "lost: its worker stopped reporting (killed, or its host vanished) while it ran",
            )
        except Exception:  # the database is away: give the claims back for the next sweep
            redis.zadd(leases_key, dict.fromkeys(map(str, claimed[done:]), now.timestamp()))
            raise
    if claimed:
        logger.warning("sweeper: runs %s marked lost (no lease renewal)", claimed)
    return claimed


def expire_late(runs: RunStore, now: datetime) -> list[int]:
    """End ``expired`` the queued runs past their start deadline (beat's tick and every
    worker's housekeeping call it: with every worker busy or down, beat still does)."""
    expired = runs.expire_late(now)
    if expired:
        logger.warning("runs %s expired (not started by their start deadline)", expired)
    return expired


def sweep_unsent(
    runs: RunStore, message_ids: Callable[[], set[str]], now: datetime, older_than_s: float
) -> list[int]:
    """Mark ``lost`` the runs queued for longer than ``older_than_s`` whose message is in no
    queue and with no worker: their publisher died, or Redis lost it. Their ids."""
    queued = runs.queued_before(now - timedelta(seconds=older_than_s), UNSENT_BATCH)
    if not queued:
        return []
    present = message_ids()
    vanished = [run_id for run_id, task_id in queued if task_id not in present]
    if vanished:
        # A worker may have taken one between the two reads and acked it already, its record
        # not yet stored (a batch every 0.2 s): only those still queued after that go.
        time.sleep(UNSENT_SETTLE_S)
    for run_id in vanished:
        runs.close_open(run_id, "", RunStatus.lost, now, UNSENT, (RunStatus.queued,))
    if vanished:
        logger.warning("sweeper: runs %s marked lost (their message is not in the broker)",
                       vanished)  # fmt: skip
    return vanished
