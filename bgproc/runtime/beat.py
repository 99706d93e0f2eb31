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

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.utils.log import get_logger
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis
from redis import Redis
from redis.exceptions import LockNotOwnedError

from bgproc.installation import Installation
from bgproc.outages import DATABASE, REDIS, Outages, outage_of
from bgproc.services.control import BeatInfo
from bgproc.services.sync import sync
from bgproc.settings import RUN_ID_HEADER
from bgproc.statuses import Channel, RunStatus
from bgproc.store.db import ping
from bgproc.store.entries import TimingEntry
from bgproc.store.schedules import MISFIRE_THRESHOLD, Occurrence
from bgproc.store.transitions import NewRun

logger = get_logger("celery.beat")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HEARTBEAT_EVERY_S = 0.5  # at most; beat ticks at least every second


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
        self.outages = Outages(logger, "beat")
        self._standing_by = False
        self._took_lock_at: datetime | None = None  # until the plans no beat watched start
        super().__init__(app, **kwargs)
        self.lock_name: str = self.lock_key
        self.lock_key = None  # RedBeat's own lock handling (beat_init, tick, close) stays out
        # When a lock holder last ticked: a request scheduled after that, before the lock
        # was taken again, was watched by no beat (RedBeat's own keys sit beside, "::").
        self.watch_key = self.app.redbeat_conf.key_prefix + ":watched"

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
        """One pass: hold (or wait for) the lock, act on what is due; an outage of Redis or
        the database costs a retry, never the process. The sleep is counted from the
        tick's end: RedBeat returns the seconds to the next fire as seen when each entry
        was looked at, and without the correction every fire after a busy tick (publishing
        costs milliseconds) would start that much late, and stay so."""
        began = time.monotonic()
        with _stop_signals_deferred():
            try:
                if self._holds_lock():
                    self._watch()
                    interval = self._tick_held()
                else:
                    interval = self.max_interval
            except Exception as error:
                service = outage_of(error)
                if service is None:
                    raise
                interval = self.outages.lost(service, error)
            self.on_ticked()
        return max(0.0, interval - (time.monotonic() - began))

    def _holds_lock(self) -> bool:
        """Whether this beat holds the lock now: extended if held, taken if free (RedBeat
        takes it once, blocking, and exits when it loses it; here a beat that lost it,
        to an outage that outlived its timeout or to another beat, stands by instead)."""
        client = get_redis(self.app)
        redis_was_down = self.outages.is_down(REDIS)
        if self.lock is not None:
            try:
                self.lock.extend(int(self.lock_timeout))
            except LockNotOwnedError:
                self.lock = None
                logger.warning("beat: the lock expired or was taken meanwhile; standing by")
            else:
                self.outages.back(REDIS)
                if redis_was_down:
                    self.on_entries_in_doubt()
                return True
        lock = client.lock(self.lock_name, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)  # extend to, not by
        taken = lock.acquire(blocking=False)
        self.outages.back(REDIS)
        if not taken:
            if not self._standing_by:
                logger.info("beat: another beat holds the lock; standing by")
                self._standing_by = True
            return False
        self.lock, self._standing_by = lock, False
        self._took_lock_at = self.clock()
        logger.info("beat: Acquired lock")
        self.on_entries_in_doubt()
        return True

    def _watch(self) -> None:
        """Mark the entries watched now; first, once after the lock was taken, start the
        plans that no beat watched since they were scheduled (until done: Redis may fail)."""
        client = get_redis(self.app)
        if self._took_lock_at is not None:
            self._start_unwatched(client, self._took_lock_at)
            self._took_lock_at = None
        client.set(self.watch_key, self.clock().timestamp())

    def _start_unwatched(self, client: Redis, took_at: datetime) -> None:
        """Requests scheduled after the last lock holder's last tick (or before any beat ran)
        whose first fire would count as missed start their plan at ``took_at``: no beat was
        there to miss it. Only entries whose first fire is that late can be such, and those
        are the due ones; entries sync rebuilds next are not (they come after)."""
        mark = client.get(self.watch_key)
        watched_until = None if mark is None else datetime.fromtimestamp(float(mark), UTC)
        late = (took_at - MISFIRE_THRESHOLD).timestamp()
        keys = client.zrangebyscore(self.app.redbeat_conf.schedule_key, "-inf", f"({late}")
        started = [
            entry.request_id
            for entry in self.Entry.load_many(self.app, keys)
            if entry.last_run_at is None
            and (watched_until is None or entry.schedule.scheduled_from > watched_until)
            and entry.start_plan_at(took_at)
        ]
        if started:
            logger.info("beat: requests %s were scheduled while no beat ran: their plans "
                        "start now, nothing missed", started)  # fmt: skip

    def _tick_held(self) -> float:
        """RedBeat's pass over the due entries, for the lock holder."""
        remaining = [self.max_interval]
        for entry in self.schedule.values():
            next_s = self.maybe_due(entry, **self._maybe_due_kwargs)
            if next_s:
                remaining.append(next_s)
        return min(remaining)

    def on_entries_in_doubt(self) -> None:
        """The lock was taken (first time, or again after it was lost) or Redis was away:
        Redis may have lost entries meanwhile, so the runtime re-syncs."""

    def on_ticked(self) -> None:
        """A pass ended (held, standing by, or in an outage): the runtime's heartbeat."""

    def setup_schedule(self) -> None:
        """Nothing at start-up (RedBeat's would touch Redis, which may be down): requests
        are the only entries, and the lock holder syncs them at its first tick."""

    def close(self) -> None:
        """Release the lock if Redis answers; otherwise it expires by itself."""
        lock, self.lock = self.lock, None
        if lock is not None:
            try:
                if lock.owned():
                    lock.release()
                    logger.info("beat: Releasing lock")
            except Exception as error:
                if outage_of(error) is None:
                    raise
                logger.warning("beat: lock not released (%s); it expires by itself", error)
        super().close()

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
        if occurrence.missed or not occurrence.run:
            self._misfired(entry, occurrence)  # first: an outage here leaves the entry due
        after = entry.advance(occurrence)
        if after is None:
            logger.info("beat: %s changed while due; read again at the next tick", entry.name)
            return None
        if occurrence.run:
            self._publish(after, producer)
        if occurrence.next_fire is None:
            self._end(after)
            return None
        return (occurrence.next_fire - now).total_seconds()

    # -- internals ------------------------------------------------------------------

    def _publish(self, entry: TimingEntry, producer: Any) -> None:
        """Send the run; a broker error loses this occurrence (already recorded), never beat."""
        try:
            entry = self.on_publish(entry)
        except Exception as error:
            if outage_of(error) is None:
                logger.exception("beat: could not record the fire of %s (its worker will)",
                                 entry.name)  # fmt: skip
            else:
                self.outages.lost(DATABASE, error)  # its worker records it when it is back
        shown = entry.options.get("shadow") or entry.task  # the name Celery's tools show
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, shown)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as error:
            cause = error.__cause__ or error
            if outage_of(cause) is None:
                logger.exception("beat: could not publish %s; this occurrence is lost", entry.name)
            else:
                self.outages.lost(REDIS, cause)
                logger.warning("beat: %s not sent (the broker is away); recorded as misfired",
                               entry.name)  # fmt: skip
            try:
                self.on_publish_failed(entry, error)
            except Exception:
                logger.exception("beat: on_publish_failed failed for %s", entry.name)

    def _misfired(self, entry: TimingEntry, occurrence: Occurrence) -> None:
        """Record a misfire; an outage is raised (the tick waits for the service)."""
        try:
            self.on_misfire(entry.request_id, occurrence)
        except Exception as error:
            if outage_of(error) is not None:
                raise
            logger.exception("beat: on_misfire failed for %s", entry.name)

    def _end(self, entry: TimingEntry) -> None:
        """Remove a finished entry once the hook took note; on failure it is retried next tick."""
        try:
            self.on_series_end(entry.request_id)
        except Exception as error:
            if outage_of(error) is None:
                logger.exception("beat: on_series_end failed for %s; retried next tick",
                                 entry.name)  # fmt: skip
            else:
                self.outages.lost(DATABASE, error)
            return
        entry.finish()


class Scheduler(EntryScheduler):
    """``beat_scheduler`` of bgproc: entries plus the database (complete, misfired, sync)."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.installation = Installation(app.conf.bgproc_settings)
        self._synced = False
        self.started_at = datetime.now(UTC)
        self.beat_name = f"{socket.gethostname()}:{os.getpid()}"
        self._heartbeat_due = 0.0
        super().__init__(app, **kwargs)

    def _tick_held(self) -> float:
        """Act only with the database answering (a fire needs its run row, a misfire its
        record), so what fell due in an outage goes through the misfire rules when it ends;
        reconcile first whenever the entries are in doubt (lock taken, Redis was away)."""
        if self.outages.is_down(DATABASE) or not self._synced:
            ping(self.installation.engine)
            self.outages.back(DATABASE)
        if not self._synced:
            try:
                installation = self.installation
                report = sync(
                    installation.engine, installation.entries, installation.registry, self.clock()
                )
                logger.info("beat: sync %s", report.summary())
            except Exception as error:
                if outage_of(error) is not None:
                    raise  # synced when the service is back
                logger.exception("beat: sync failed; `bgproc sync` can repair")
            self._synced = True
        return super()._tick_held()

    def on_series_end(self, request_id: int) -> None:
        self.installation.requests.complete(request_id)

    def on_entries_in_doubt(self) -> None:
        self._synced = False

    def on_ticked(self) -> None:
        """The heartbeat ``monitor beats`` and ``health`` read; Redis away: nothing to write."""
        now = time.monotonic()
        if now < self._heartbeat_due or self.outages.is_down(REDIS):
            return
        self._heartbeat_due = now + HEARTBEAT_EVERY_S
        heartbeat = BeatInfo(
            name=self.beat_name,
            host=socket.gethostname(),
            pid=os.getpid(),
            holds_lock=self.lock is not None,
            started_at=self.started_at,
            ticked_at=datetime.now(UTC),
            down=tuple(sorted(self.outages.down)),
            last_error=self.outages.last_error,
        )
        try:
            self.installation.control.announce_beat(heartbeat)
        except Exception as error:
            if outage_of(error) is None:
                logger.exception("beat: heartbeat not written")

    def close(self) -> None:
        """Leave the list of beats at once (a clean stop is not a stale beat)."""
        super().close()
        with suppress(Exception):  # Redis away: the heartbeat ages out by itself
            self.installation.control.retire_beat(self.beat_name)

    def on_publish(self, entry: TimingEntry) -> TimingEntry:
        """A queued run per fire, before its message: the message carries the run's id."""
        task_id = str(uuid.uuid4())
        queued = self.installation.runs.queue_fire(
            entry.request_id, task_id, entry.last_run_at, self.clock()
        )
        if queued is None:
            return entry  # the request is gone: the worker refuses the fire
        run_id, process = queued
        headers = {**entry.options.get("headers", {}), RUN_ID_HEADER: run_id}
        # shadow: the name Celery's tools show for the run (see bgproc.runtime.runner)
        entry.options = {**entry.options, "task_id": task_id, "headers": headers, "shadow": process}
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
            NewRun(
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
        )
