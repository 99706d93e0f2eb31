"""What ``/metrics`` reports (design §6a: health is visible), gathered from bounded reads.

The run figures cover a window, the last hour, not all time (:mod:`bgproc.store.metrics`):
gauges that any number of web servers agree on, that survive their restarts and pruning,
and that cost the same over a million runs as over a hundred. The live figures (workers,
beats, queues) come from Redis. The database and Redis are read apart: with one of them
away the other's figures are still reported, and ``up`` says which one did not answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine

from bgproc.outages import DATABASE, REDIS, outage_of
from bgproc.services.control import BeatInfo, Control, QueueDepth, WorkerInfo
from bgproc.settings import METRICS_WINDOW_RUNS, METRICS_WINDOW_S
from bgproc.store.metrics import (
    Buckets,
    LastSuccess,
    RecentRuns,
    last_successes,
    processing,
    recent_runs,
)

T = TypeVar("T")


@dataclass
class Snapshot:
    """Everything one scrape reports; a part whose service did not answer stays empty."""

    window_s: float
    window_runs: int
    runs: list[RecentRuns] = field(default_factory=list)
    processing: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)  # processing past a max runtime
    successes: list[LastSuccess] = field(default_factory=list)
    queues: list[QueueDepth] = field(default_factory=list)
    unacked: int = 0
    workers: list[WorkerInfo] = field(default_factory=list)
    beats: list[BeatInfo] = field(default_factory=list)
    lock_held: bool = False
    up: dict[str, bool] = field(default_factory=dict)  # service -> it answered

    @property
    def capped(self) -> bool:
        """The newest ``window_runs`` runs all fell in the window: it covers less than its
        time (more runs than that in an hour)."""
        return sum(r.count for r in self.runs) >= self.window_runs

    def by_process(self, pick: Callable[[RecentRuns], Buckets]) -> dict[str, Buckets]:
        """A histogram per process, its statuses added up."""
        found: dict[str, Buckets] = {}
        for row in self.runs:
            buckets = pick(row)
            found[row.process] = found[row.process] + buckets if row.process in found else buckets
        return found


def gather(
    engine: Engine,
    control: Control,
    queues: Iterable[str],
    now: datetime,
    window_s: float = METRICS_WINDOW_S,
    window_runs: int = METRICS_WINDOW_RUNS,
) -> Snapshot:
    """One scrape's figures: a few bounded queries and a few Redis reads."""
    snapshot = Snapshot(window_s, window_runs)

    def read(service: str, action: Callable[[], T], empty: T) -> T:
        if snapshot.up.get(service) is False:
            return empty
        try:
            value = action()
        except Exception as error:
            if outage_of(error) is None:
                raise
            snapshot.up[service] = False
            return empty
        snapshot.up[service] = True
        return value

    since = now - timedelta(seconds=window_s)
    snapshot.runs = read(DATABASE, lambda: recent_runs(engine, since, window_runs), [])
    snapshot.processing = read(DATABASE, lambda: processing(engine), {})
    snapshot.overdue = read(DATABASE, lambda: processing(engine, overdue=True), {})
    snapshot.successes = read(DATABASE, lambda: last_successes(engine), [])
    snapshot.workers = read(REDIS, control.workers, [])
    snapshot.queues = read(REDIS, lambda: control.queues(queues), [])
    snapshot.unacked = read(REDIS, control.unacked, 0)
    snapshot.beats = read(REDIS, control.beats, [])
    snapshot.lock_held = read(REDIS, control.lock_held, False)
    return snapshot
