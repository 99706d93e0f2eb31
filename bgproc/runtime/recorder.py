"""Run records written from a worker process: in batches, off the run's thread.

A run's status changes and log lines only go into memory on the run's thread; one
writer thread per process stores what gathered every ``FLUSH_INTERVAL_S`` in one
transaction (the changes of one run merged into one UPDATE), then tells Redis which
runs are alive. That keeps the database out of the hot path: a no-op run costs the
workers one read, not three commits (see ``bench/bench_throughput.py``).

Liveness: each running run holds a lease, a score (its expiry) in one Redis sorted set,
renewed by the writer every third of the lease while the run goes and removed when its
end is stored. A worker that dies stops renewing; :func:`bgproc.runtime.sweeper.sweep` marks
its runs ``lost``. Because the lease is given only after the ``processing`` row is
committed and taken back only after the end is, a live lease always means a row that
says ``processing``; a run that starts and ends within one batch never needs one.

Kill requests are a Redis set of run ids, read by the writer for the killable runs of
this process; a requested run's stop event is set (:meth:`ProcessContext.should_stop`).

A clean shutdown loses nothing (:meth:`RunRecorder.flush` at the pool child's and the
worker's exit). A crash loses at most the last interval of changes: the run's lease
expires and the sweeper marks it ``lost``, or, if it never got one, the message is
redelivered (late acks) and the run starts again as its next attempt.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from redis import Redis
from sqlalchemy import Engine, Update, bindparam, func, or_, update

from bgproc.outages import Outages, outage_of
from bgproc.progress import Progress
from bgproc.statuses import RunStatus
from bgproc.store.alerts import ALERTING, record_events
from bgproc.store.db import execute_many, writing
from bgproc.store.models import ProcessRun
from bgproc.store.transitions import RunEnd, RunStart
from bgproc.timing.deadlines import spoken_s
from bgproc.timing.walltime import utc_now

# How stale the monitor may be. Each batch costs ~1 ms of the worker's CPU whatever its size
# (a commit, a pool round): at 400 runs/s a process pays ~50 µs per run at 0.05 s, ~15 at 0.2 s.
FLUSH_INTERVAL_S = 0.2
KILL_CHECK_S = 0.5  # how soon a killable run hears of its kill request
RETRY_DELAY_S = 1.0  # after a failed write (database or Redis away), try again this late
# The statuses a worker may still move: anything else was decided by someone else (the
# worker's main process at a hard time limit, the sweeper), unless it is an older attempt.
OPEN = (RunStatus.queued, RunStatus.processing)
KILLED_ON_REQUEST = "killed on request (bgproc monitor kill)"

logger = logging.getLogger("bgproc.recorder")


@dataclass
class _Change:
    """What is pending for one run: its new column values and its new log text."""

    attempt: int
    fields: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    ended: bool = False


class StopSignal(threading.Event):
    """A killable run's stop event, and who asked (a kill request, or its overdue kill)."""

    def __init__(self) -> None:
        super().__init__()
        self.why = KILLED_ON_REQUEST


@dataclass
class _Running:
    """A run of this process that holds (or is about to hold) a lease."""

    stop: StopSignal | None  # set on a kill request; None: not killable
    attempt: int = 1
    leased: bool = False
    overdue_due: float | None = None  # monotonic: past its maximum runtime then
    max_runtime_s: int | None = None
    kill_overdue: bool = False


class RunRecorder:
    """Stores the runs of one worker process; thread-safe, one writer thread, fork-aware."""

    def __init__(
        self,
        engine: Engine,
        redis: Redis,
        leases_key: str,
        kills_key: str,
        lease_s: float,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.leases_key = leases_key
        self.kills_key = kills_key
        self.lease_s = lease_s
        self.flush_interval_s = flush_interval_s
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """A fresh state: after a fork, the parent's pending changes are not the child's."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one flush at a time, so changes keep their order
        self._pending: dict[int, _Change] = {}
        self._running: dict[int, _Running] = {}
        self._ended: set[int] = set()  # stored as ended, lease still to drop
        self._thread: threading.Thread | None = None
        self._renew_due = 0.0
        self._kill_check_due = 0.0
        self._outages = Outages(logger, "run records")

    # -- what the runs report (never blocks on I/O) ------------------------------------

    def started(
        self,
        start: RunStart,
        killable: bool,
        max_runtime_s: int | None = None,
        kill_overdue: bool = False,
    ) -> StopSignal | None:
        """The run is processing; a killable run gets an event, set if a kill is asked for.
        With ``max_runtime_s``, the writer marks it overdue once that has passed (and with
        ``kill_overdue`` sets its event, saying why)."""
        stop = StopSignal() if killable else None
        due = time.monotonic() + max_runtime_s if max_runtime_s is not None else None
        with self._lock:
            self._running[start.run_id] = _Running(
                stop, start.attempt, overdue_due=due, max_runtime_s=max_runtime_s,
                kill_overdue=kill_overdue,
            )  # fmt: skip
            self._change(start.run_id, start.attempt, start.columns())
            self._wake.notify()
        self._start_writer()
        return stop

    def ended(self, end: RunEnd) -> None:
        """The run has its outcome (a status that is final, with its end time)."""
        with self._lock:
            self._change(end.run_id, end.attempt, end.columns()).ended = True
            self._wake.notify()
        self._start_writer()

    def progress(self, run_id: int, attempt: int, progress: Progress) -> None:
        """The run's latest ``ctx.progress`` report: stored with its next batch, so a process
        reporting every item costs one write per interval, whatever its pace."""
        with self._lock:
            self._change(run_id, attempt, {"progress": progress.as_json()})
            self._wake.notify()
        self._start_writer()

    def append_log(self, run_id: int, text: str) -> None:
        """More of the run's Process Log (the sink of :class:`LogCapture`)."""
        if not text:
            return
        with self._lock:
            change = self._pending.get(run_id)
            if change is None:
                change = self._pending[run_id] = _Change(attempt=0)
            change.log.append(text)
            self._wake.notify()
        self._start_writer()

    def _change(self, run_id: int, attempt: int, fields: dict[str, Any]) -> _Change:
        change = self._pending.get(run_id)
        if change is None:
            change = self._pending[run_id] = _Change(attempt)
        change.attempt = max(change.attempt, attempt)
        change.fields.update(fields)
        return change

    # -- the writer --------------------------------------------------------------------

    def _start_writer(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="bgproc-run-recorder", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        wake = self._wake  # this thread's own, even if a fork resets the attribute
        while True:
            with wake:
                while not (self._mark_overdue() or self._pending or self._due_in_redis()):
                    wake.wait(self._idle_wait())
            time.sleep(self.flush_interval_s)  # let a batch gather
            try:
                self.flush()
            except Exception as error:
                service = outage_of(error)
                if service is None:
                    logger.exception("run records not stored yet; retrying")
                else:
                    self._outages.lost(service, error)
                time.sleep(RETRY_DELAY_S)
            else:
                self._outages.all_back()

    def _mark_overdue(self) -> bool:
        """Runs past their maximum runtime get ``overdue_at`` (once: stored with the next
        batch, only while the run is open), and with kill-overdue their stop event, saying
        who asked; whether any did (lock held)."""
        now = time.monotonic()
        marked = False
        for run_id, running in self._running.items():
            if running.overdue_due is None or now < running.overdue_due:
                continue
            running.overdue_due, marked = None, True
            self._change(run_id, running.attempt, {"overdue_at": utc_now()})
            limit = spoken_s(running.max_runtime_s or 0)
            logger.warning("run %s is overdue: still running %s after it started", run_id, limit)
            if running.kill_overdue and running.stop is not None:
                running.stop.why = (f"killed: overdue, still running {limit} after it started "
                                    f"(--max-runtime {limit} --kill-overdue)")  # fmt: skip
                running.stop.set()
        return marked

    def _idle_wait(self) -> float | None:
        """How long the writer may sleep with nothing pending (lock held)."""
        if not self._running:
            return None
        now = time.monotonic()
        due = [self._renew_due]
        due += [r.overdue_due for r in self._running.values() if r.overdue_due is not None]
        if any(r.stop is not None for r in self._running.values()):
            due.append(self._kill_check_due)
        return max(0.0, min(due) - now)

    def _due_in_redis(self) -> bool:
        """Whether Redis has work: leases to give, drop or renew, kills to look for (lock held)."""
        if self._ended or any(not r.leased for r in self._running.values()):
            return True
        now = time.monotonic()
        if self._running and now >= self._renew_due:
            return True
        killable = any(r.stop is not None for r in self._running.values())
        return killable and now >= self._kill_check_due

    def flush(self) -> None:
        """Store everything pending now, then bring the leases up to date; raise on failure
        (what was taken is put back, so nothing is lost and the order holds)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if batch:
                try:
                    self._store(batch)
                except Exception:
                    with self._lock:
                        for run_id, change in self._pending.items():
                            _merge(batch.setdefault(run_id, _Change(change.attempt)), change)
                        self._pending = batch
                    # The runs still go: keep their leases, or the sweep would call them lost
                    with suppress(Exception):
                        self._sync_redis(stored=False)
                    raise
                with self._lock:
                    for run_id, change in batch.items():
                        if change.ended:
                            self._forget(run_id)
            self._sync_redis()

    def _forget(self, run_id: int) -> None:
        """An ended run is stored: its lease and kill request go at the next Redis sync. A run
        that ended before it was leased (most short ones) costs Redis nothing (lock held)."""
        running = self._running.pop(run_id, None)
        if running is not None and (running.leased or running.stop is not None):
            self._ended.add(run_id)

    def _store(self, batch: dict[int, _Change]) -> None:
        """One transaction: log text first, so an ended run's log is complete when it shows;
        the alert events of the runs that ended go in with their ends."""
        logs = [{"b_id": i, "b_text": "".join(c.log)} for i, c in batch.items() if c.log]
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for run_id, change in batch.items():
            if change.fields:
                keys = tuple(sorted(change.fields))
                row = {"b_id": run_id, "b_attempt": change.attempt, **change.fields}
                groups.setdefault(keys, []).append(row)
        with writing(self.engine) as connection:
            if logs:
                execute_many(connection, _APPEND_LOG, logs)
            for keys, rows in groups.items():
                execute_many(connection, _set_fields(keys), rows)
            # only ends that may alert: a batch of successes costs no statement more
            alerting = [i for i, c in batch.items()
                        if c.ended and c.fields.get("status") in ALERTING]  # fmt: skip
            record_events(connection, alerting)

    def _sync_redis(self, stored: bool = True) -> None:
        """Give new leases, renew due ones, drop ended ones; look for kill requests.
        Not ``stored`` (the database is away): only renew the leases already given."""
        now = time.monotonic()
        with self._lock:
            running = {i: r for i, r in self._running.items() if stored or r.leased}
            ended = set(self._ended) if stored else set()
            renew = bool(running) and now >= self._renew_due
            fresh = [i for i, r in running.items() if not r.leased]
            killable = [i for i, r in running.items() if r.stop is not None and r.leased]
            check_kills = bool(killable) and now >= self._kill_check_due
        leased = list(running) if renew else fresh
        if not (leased or ended or check_kills):
            return
        expiry = time.time() + self.lease_s
        with self.redis.pipeline(transaction=False) as pipe:
            if leased:
                pipe.zadd(self.leases_key, dict.fromkeys(map(str, leased), expiry))
            if ended:
                pipe.zrem(self.leases_key, *map(str, ended))
                pipe.srem(self.kills_key, *map(str, ended))
            if check_kills:
                pipe.smismember(self.kills_key, [str(i) for i in killable])
            replies = pipe.execute()
        with self._lock:
            for run_id in leased:
                if run_id in self._running:
                    self._running[run_id].leased = True
            self._ended -= ended
            if renew:
                self._renew_due = now + self.lease_s / 3
            if check_kills:
                self._kill_check_due = now + KILL_CHECK_S
                for run_id, asked in zip(killable, replies[-1], strict=True):
                    stop = self._running[run_id].stop if run_id in self._running else None
                    if asked and stop is not None:
                        stop.set()

    def running(self) -> Iterable[int]:
        """The runs of this process that have not ended (for tests and shutdown notes)."""
        with self._lock:
            return list(self._running)


_RUN = ProcessRun.__table__
_APPEND_LOG = (
    update(_RUN)
    .where(_RUN.c.id == bindparam("b_id"))
    .values(log=func.coalesce(_RUN.c.log, "").concat(bindparam("b_text")))
)


@cache
def _set_fields(keys: tuple[str, ...]) -> Update:
    """The UPDATE of these columns of a run still open (or of an older attempt), built once
    per set of columns: a batch has a few such sets, and building costs more than running."""
    return (
        update(_RUN)
        .where(
            _RUN.c.id == bindparam("b_id"),
            # not IN (...): an expanding parameter cannot go in an executemany
            or_(
                *(_RUN.c.status == status for status in OPEN),
                _RUN.c.attempt < bindparam("b_attempt"),
            ),
        )
        .values({key: bindparam(key) for key in keys})
    )


def _merge(into: _Change, later: _Change) -> None:
    """``later``'s changes over ``into``'s: later values win, log text follows."""
    into.attempt = max(into.attempt, later.attempt)
    into.fields.update(later.fields)
    into.log.extend(later.log)
    into.ended = into.ended or later.ended
