"""The beat scheduler: RedBeat with our entries, the misfire policy and one-shots that end.

Each fire is recorded in Redis before it is published, as RedBeat does, so a beat
restarted at any moment never publishes an occurrence twice (a crash between the
record and the publish loses that one occurrence instead). An entry with nothing
left stays in the due window as a tombstone until :meth:`Scheduler.on_series_end`
has succeeded, then goes: a one-shot fires exactly once, and no entry ever waits
in the due window without being acted on. Kept free of SQL: the hooks are where
the runtime wires the monitor in.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from celery import Celery
from celery.utils.log import get_logger
from redbeat.schedulers import RedBeatScheduler, get_redis
from redis.exceptions import LockNotOwnedError

from bgproc.app import RUN_ID_HEADER
from bgproc.entries import TimingEntry
from bgproc.installation import Installation
from bgproc.models import Channel, RunStatus
from bgproc.schedules import Occurrence
from bgproc.sync import sync

logger = get_logger("celery.beat")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """SIGTERM and SIGINT that arrive inside the block act when it ends; a second one at once.

    Celery's beat answers them by closing the scheduler (RedBeat releases its lock) and
    raising SystemExit wherever the main thread is. Mid-tick, that cuts a publish in two
    and the tick goes on without its lock, ending in a traceback. Deferred, beat stops
    between ticks, where every fire is either sent or not. A second signal is the way
    out of a tick that hangs (an unreachable broker).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    pending: list[int] = []

    def defer(signum: int, _frame: object) -> None:
        if not pending:
            pending.append(signum)
            return
        pending.clear()  # the second one: act now
        _restore(originals)
        signal.raise_signal(signum)

    originals = {number: signal.signal(number, defer) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(originals)
        if pending:
            signal.raise_signal(pending.pop())


def _restore(handlers: dict[int, Any]) -> None:
    for number, handler in handlers.items():
        signal.signal(number, signal.SIG_DFL if handler is None else handler)


class EntryScheduler(RedBeatScheduler):
    """RedBeat with our entries, the misfire policy and series that end; time can be passed in."""

    Entry = TimingEntry

    def __init__(
        self, app: Celery, clock: Callable[[], datetime] | None = None, **kwargs: Any
    ) -> None:
        self.clock = clock or app.now
        super().__init__(app, **kwargs)

    # -- hooks (never SQL here) ---------------------------------------------------

    def on_series_end(self, request_id: int) -> None:
        """The request has no fire left; must be idempotent (a restart may repeat it)."""

    def on_publish(self, entry: TimingEntry) -> TimingEntry:
        """The entry as it is about to be sent: the monitor records the run as queued."""
        return entry

    def on_publish_failed(self, entry: TimingEntry, error: Exception) -> None:
        """The fire could not be sent (the broker is away): the monitor says so."""

    def on_misfire(self, request_id: int, occurrence: Occurrence) -> None:
        """Fires were missed (beat was down): the monitor records them as ``misfired``."""
        logger.warning(
            "beat: request %s missed %d fire(s) from %s; %s",
            request_id,
            occurrence.missed,
            occurrence.first_missed.isoformat() if occurrence.first_missed else "-",
            "running once now" if occurrence.run else "skipped (policy skip)",
        )

    # -- RedBeat overrides -----------------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """RedBeat's tick, with its sleep counted from the tick's end; a lock that vanished
        (Redis wiped) is taken again if it is free.

        RedBeat returns the seconds to the next fire as seen when each entry was looked at;
        Celery sleeps them after the tick. Without the correction every fire after a busy
        tick (publishing costs milliseconds) would start that much late, and stay so.
        """
        began = time.monotonic()
        with _stop_signals_deferred():
            try:
                interval = super().tick(*args, **kwargs)
            except LockNotOwnedError:
                if self.lock is None or not self.lock.acquire(blocking=False):
                    logger.error("beat: another beat holds the lock now; this one stops")
                    raise SystemExit(1) from None
                logger.warning("beat: the lock had vanished from Redis (wiped?); taken again")
                self.on_lock_regained()
                interval = super().tick(*args, **kwargs)
        return max(0.0, interval - (time.monotonic() - began))

    def on_lock_regained(self) -> None:
        """Redis lost the lock key, so it may have lost entries too: the runtime re-syncs."""

    def install_default_entries(self, data: dict[str, Any]) -> None:
        """None: results live in the monitor database, so no ``celery.backend_cleanup`` entry."""

    @property
    def schedule(self) -> dict[str, TimingEntry]:
        """Every due entry and the next one to come, in two round trips (RedBeat: one per entry)."""
        now_s = self.clock().timestamp()
        schedule_key = self.app.redbeat_conf.schedule_key
        with get_redis(self.app).pipeline() as pipe:
            pipe.zrangebyscore(schedule_key, "-inf", now_s)
            pipe.zrangebyscore(schedule_key, f"({now_s}", now_s + self.max_interval, start=0, num=1)
            due, soon = pipe.execute()
        return {e.name: e for e in self.Entry.load_many(self.app, due + soon)}

    def maybe_due(self, entry: TimingEntry, producer: Any = None, **kwargs: Any) -> float | None:
        """Act on ``entry`` if due; seconds until it next needs a look (None: not before a tick)."""
        now = self.clock()
        try:
            occurrence = entry.schedule.occurrence(entry.last_run_at, now)
            fire = entry.schedule.next_due(entry.last_run_at) if occurrence is None else None
        except Exception:
            return self._is_due_failed(entry)[1]  # logged; one bad entry must not stop beat
        if occurrence is None:
            if fire is None:
                self._end(entry)
                return None
            return (fire - now).total_seconds()
        after = entry.advance(occurrence)
        if after is None:
            logger.info("beat: %s changed while due; read again at the next tick", entry.name)
            return None
        if occurrence.missed or not occurrence.run:
            self._misfired(after, occurrence)
        if occurrence.run:
            self._publish(after, producer)
        if occurrence.next_fire is None:
            self._end(after)
            return None
        return (occurrence.next_fire - now).total_seconds()

    # -- internals ------------------------------------------------------------------

    def _publish(self, entry: TimingEntry, producer: Any) -> None:
        """Send the run; a broker error loses this occurrence (already recorded), never beat."""
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            entry = self.on_publish(entry)
        except Exception:
            logger.exception("beat: could not record the fire of %s (its worker will)", entry.name)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as error:
            logger.exception("beat: could not publish %s; this occurrence is lost", entry.name)
            try:
                self.on_publish_failed(entry, error)
            except Exception:
                logger.exception("beat: on_publish_failed failed for %s", entry.name)

    def _misfired(self, entry: TimingEntry, occurrence: Occurrence) -> None:
        try:
            self.on_misfire(entry.request_id, occurrence)
        except Exception:
            logger.exception("beat: on_misfire failed for %s", entry.name)

    def _end(self, entry: TimingEntry) -> None:
        """Remove a finished entry once the hook took note; on failure it is retried next tick."""
        try:
            self.on_series_end(entry.request_id)
        except Exception:
            logger.exception("beat: on_series_end failed for %s; retried next tick", entry.name)
            return
        entry.finish()


class Scheduler(EntryScheduler):
    """``beat_scheduler`` of bgproc: entries plus the database (complete, misfired, sync)."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.installation = Installation(app.conf.bgproc_settings)
        self._synced = False
        super().__init__(app, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Reconcile once, from the first tick: only the lock holder ticks, so one beat syncs."""
        if not self._synced:
            try:
                report = sync(self.installation, self.clock())
                logger.info("beat: sync %s", report.summary())
            except Exception:
                logger.exception("beat: start-up sync failed; `bgproc sync` can repair")
            self._synced = True
        return super().tick(*args, **kwargs)

    def on_series_end(self, request_id: int) -> None:
        self.installation.requests.complete(request_id)

    def on_lock_regained(self) -> None:
        self._synced = False

    def on_publish(self, entry: TimingEntry) -> TimingEntry:
        """A queued run per fire, before its message: the message carries the run's id."""
        task_id = str(uuid.uuid4())
        run_id = self.installation.runs.queue_fire(
            entry.request_id, task_id, entry.last_run_at, self.clock()
        )
        if run_id is None:
            return entry  # the request is gone: the worker refuses the fire
        headers = {**entry.options.get("headers", {}), RUN_ID_HEADER: run_id}
        entry.options = {**entry.options, "task_id": task_id, "headers": headers}
        return entry

    def on_publish_failed(self, entry: TimingEntry, error: Exception) -> None:
        run_id = entry.options.get("headers", {}).get(RUN_ID_HEADER)
        if run_id is not None:
            self.installation.runs.close_open(
                run_id,
                "",
                RunStatus.misfired,
                self.clock(),
                f"misfired: could not be sent to the broker ({type(error).__name__}: {error})",
            )

    def on_misfire(self, request_id: int, occurrence: Occurrence) -> None:
        super().on_misfire(request_id, occurrence)
        request = self.installation.requests.get(request_id)
        missed = occurrence.missed
        self.installation.runs.record(
            request_id=request_id,
            process=request.label,
            params=request.params,
            status=RunStatus.misfired,
            channel=Channel.scheduler,
            scheduled_at=occurrence.first_missed or occurrence.due,
            ended_at=self.clock(),
            error=f"misfired: beat was down; {missed} fire(s) from "
            f"{(occurrence.first_missed or occurrence.due).isoformat()} not executed"
            + (" (ran once instead)" if occurrence.run else " (policy skip)"),
        )
