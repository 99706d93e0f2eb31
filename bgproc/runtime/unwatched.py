"""Plans that no beat watched: a request scheduled while no beat ran misses nothing.

Apart from :mod:`bgproc.runtime.entryscheduler` because it is its own rule (design §3: a
misfire needs a beat that was there to miss it), kept in one Redis mark: when a lock holder
last ticked. A request scheduled after that mark, before a beat took the lock again, was
watched by no beat; its plan starts when the lock is taken (a past one-shot runs then, once).
"""

from __future__ import annotations

from datetime import UTC, datetime

from celery import Celery
from celery.utils.log import get_logger
from redis import Redis

from bgproc.store.entries import TimingEntry
from bgproc.store.schedules import MISFIRE_THRESHOLD

logger = get_logger("celery.beat")


class UnwatchedPlans:
    """The lock holder's watch mark, and the start of the plans scheduled after it."""

    def __init__(self, app: Celery, entry: type[TimingEntry]) -> None:
        self.app = app
        self.entry = entry
        # RedBeat's own keys sit beside this one ("::").
        self.key = app.redbeat_conf.key_prefix + ":watched"

    def mark(self, client: Redis, now: datetime) -> None:
        """Every entry is watched now: the lock holder ticks."""
        client.set(self.key, now.timestamp())

    def start(self, client: Redis, took_at: datetime) -> None:
        """Requests scheduled after the last lock holder's last tick (or before any beat ran)
        whose first fire would count as missed start their plan at ``took_at``: no beat was
        there to miss it. Only entries whose first fire is that late can be such, and those
        are the due ones; entries sync rebuilds next are not (they come after)."""
        mark = client.get(self.key)
        watched_until = None if mark is None else datetime.fromtimestamp(float(mark), UTC)
        late = (took_at - MISFIRE_THRESHOLD).timestamp()
        keys = client.zrangebyscore(self.app.redbeat_conf.schedule_key, "-inf", f"({late}")
        started = [
            entry.request_id
            for entry in self.entry.load_many(self.app, keys)
            if entry.last_run_at is None
            and (watched_until is None or entry.schedule.scheduled_from > watched_until)
            and entry.start_plan_at(took_at)
        ]
        if started:
            logger.info("beat: requests %s were scheduled while no beat ran: their plans "
                        "start now, nothing missed", started)  # fmt: skip
