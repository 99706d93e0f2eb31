"""bgproc's ``beat_scheduler``: the entry scheduler wired to the database.

:class:`~bgproc.runtime.entryscheduler.EntryScheduler` keeps Redis free of SQL and leaves
hooks; here they are the monitor's: a queued run per fire before its message, a
``misfired`` run for what beat missed or could not send, a request with no fire left
marked complete, a sync whenever the entries are in doubt, and the heartbeat that
``monitor beats`` and ``health`` read. Celery names it ``bgproc.runtime.beat:Scheduler``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.utils.log import get_logger

from bgproc.installation import Installation
from bgproc.outages import DATABASE, REDIS, outage_of
from bgproc.runtime.entryscheduler import EntryScheduler
from bgproc.runtime.sweeper import expire_late
from bgproc.services.control import BeatInfo
from bgproc.services.sync import sync
from bgproc.settings import RUN_ID_HEADER
from bgproc.statuses import Channel, RunStatus
from bgproc.store.db import ping
from bgproc.store.entries import TimingEntry
from bgproc.store.schedules import Occurrence
from bgproc.store.transitions import NewRun

logger = get_logger("celery.beat")
HEARTBEAT_EVERY_S = 0.5  # at most; beat ticks at least every second
EXPIRE_EVERY_S = 1.0  # how often beat ends queued runs past their start deadline


class Scheduler(EntryScheduler):
    """``beat_scheduler`` of bgproc: entries plus the database (complete, misfired, sync)."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.installation = Installation(app.conf.bgproc_settings)
        self._synced = False
        self.started_at = datetime.now(UTC)
        self.beat_name = f"{socket.gethostname()}:{os.getpid()}"
        self._heartbeat_due = 0.0
        self._expiry_due = 0.0
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
        next_s = super()._tick_held()
        self._expire_late()
        return next_s

    def _expire_late(self) -> None:
        """Queued runs past their start deadline end ``expired``, at most once a second:
        beat ticks while no worker runs, which is when they pile up."""
        now = time.monotonic()
        if now < self._expiry_due:
            return
        self._expiry_due = now + EXPIRE_EVERY_S
        try:
            expire_late(self.installation.runs, self.clock())
        except Exception as error:  # after this tick's fires: they are out, on time
            service = outage_of(error)
            if service is None:
                logger.exception("beat: expiring late runs failed; retried in a second")
            else:
                self.outages.lost(service, error)  # the next tick waits for it, as any

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
        installation = self.installation
        queued = installation.runs.queue_fire(
            entry.request_id, task_id, entry.last_run_at, self.clock(),
            installation.registry.deadlines_of,
        )  # fmt: skip
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
