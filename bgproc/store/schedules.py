"""The Celery schedule of one request: a :class:`Timing` on RedBeat, and its tagged JSON.

RedBeat has no registry of schedule classes, so the codec here extends RedBeat's
encoder and decoder with one tag, ``bgproc_timing``. The beat decisions
(what is due, what was missed, what comes next) are pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from bgproc.timing.calendars import Calendar, CalendarPlan, OnExcluded
from bgproc.timing.fields import TimingKind
from bgproc.timing.plan import DEFAULT_CATCH_UP_MAX, ONE_MICROSECOND, Misfire, Timing

SCHEDULE_TYPE = "bgproc_timing"  # the JSON tag of a TimingSchedule in a RedBeat definition
# Fires later than this were missed (beat down or failing over), not just late: beat wakes
# at least every second, so a fire found later than a few seconds was not caught in time.
MISFIRE_THRESHOLD = timedelta(seconds=3)
MISFIRE_SCAN_LIMIT = 1000  # missed fires counted one by one; beyond, recovery stands in for them


@dataclass(frozen=True)
class Occurrence:
    """What beat does for one request at one tick: publish or not, and what was missed."""

    due: datetime  # the due time this tick settles; stored as last_run_at
    run: bool  # publish a run for ``due``
    missed: int  # due times not executed (capped at MISFIRE_SCAN_LIMIT)
    first_missed: datetime | None  # the earliest of them
    next_fire: datetime | None  # the fire after ``due``; None when the plan is over


class TimingSchedule(BaseSchedule):
    """A request's timing as Celery sees it; ``last_run_at`` is the due time of the last fire.

    Its fires are those of the timing with its calendars (:class:`CalendarPlan`): the
    entry carries the calendars, so beat decides a fire without SQL.
    """

    def __init__(
        self,
        timing: Timing,
        scheduled_from: datetime,
        misfire: Misfire = Misfire.RUN_ONCE,
        nowfun: Callable[[], datetime] | None = None,
        app: Any = None,
        catch_up_max: int = DEFAULT_CATCH_UP_MAX,
        calendars: Sequence[Calendar] = (),
        on_excluded: OnExcluded | str = OnExcluded.SKIP,
    ) -> None:
        if timing.start is None:
            raise ValueError("a TimingSchedule needs an anchored timing (with a start)")
        if scheduled_from.tzinfo is None:
            raise ValueError("scheduled_from must be an aware datetime")
        super().__init__(nowfun=nowfun, app=app)
        self.timing = timing
        self.scheduled_from = scheduled_from.astimezone(UTC)
        self.misfire = Misfire(misfire)
        self.catch_up_max = catch_up_max
        self.plan = CalendarPlan(timing, tuple(calendars), OnExcluded(on_excluded))

    @property
    def one_shot(self) -> bool:
        """``immediate`` and ``later`` fire once, at their start."""
        return self.timing.kind is not TimingKind.SCHEDULED

    @property
    def first_after(self) -> datetime:
        """The instant the first fire comes strictly after.

        A one-shot always has its one fire, even if its start slipped into the
        past while it was being scheduled (RedBeat issue 74). A plan fires from
        the whole second it was (re)scheduled in, as ``Timing.anchored`` counts.
        """
        if self.one_shot:
            return self.timing.start - ONE_MICROSECOND  # type: ignore[operator]
        return self.scheduled_from.replace(microsecond=0) - ONE_MICROSECOND

    def next_due(self, last_due: datetime | None) -> datetime | None:
        """The fire after ``last_due`` (None: never fired), or None when the plan is over."""
        return self.plan.next_fire(self.first_after if last_due is None else last_due)

    def occurrence(self, last_due: datetime | None, now: datetime) -> Occurrence | None:
        """What is due at ``now``, with the misfire policy applied; None when nothing is.

        A fire at most MISFIRE_THRESHOLD late is just late: it is published, and
        the next pending one comes at the next look (each fire exactly once, in
        order). Older pending fires were missed (beat was down): they collapse
        into one run for the latest (``run-once``) or none (``skip``), never a
        burst, and are reported as missed; with ``catch-up`` each of the newest
        ``catch_up_max`` runs, oldest first, one per look, and only the older
        ones are reported as missed. A fire before the second the plan was
        scheduled from was missed by no beat: only a one-shot has one, when a beat
        took it after its start (no beat ran meanwhile), and it runs.
        """
        first = self.next_due(last_due)
        if first is None or first > now:
            return None
        if now - first <= MISFIRE_THRESHOLD or first < self.scheduled_from.replace(microsecond=0):
            return Occurrence(first, True, 0, None, self.plan.next_fire(first))
        latest, pending = first, 1
        while (after := self.plan.next_fire(latest)) is not None and after <= now:
            if pending == MISFIRE_SCAN_LIMIT:
                latest = now
                break
            latest, pending = after, pending + 1
        if self.misfire is Misfire.SKIP:
            return Occurrence(latest, False, pending, first, self.plan.next_fire(latest))
        if self.misfire is Misfire.CATCH_UP:
            return self._caught_up(first, pending, now)
        missed = pending - 1
        return Occurrence(
            latest, True, missed, first if missed else None, self.plan.next_fire(latest)
        )

    def _caught_up(self, first: datetime, pending: int, now: datetime) -> Occurrence:
        """The oldest pending fire that catch-up still runs; the older ones beyond the bound
        are missed. Counted again at each look, so each fire runs once, in order."""
        if pending <= self.catch_up_max:
            return Occurrence(first, True, 0, None, self.plan.next_fire(first))
        dropped = pending - self.catch_up_max
        due = first
        for _ in range(dropped):
            following = self.plan.next_fire(due)
            if following is None or following > now:  # the scan stood in for more: run now
                break
            due = following
        return Occurrence(due, True, dropped, first, self.plan.next_fire(due))

    def remaining_estimate(self, last_run_at: datetime | None) -> timedelta | None:
        """Time to the next fire; None when nothing is left (RedBeat relies on that)."""
        fire = self.next_due(last_run_at)
        return None if fire is None else fire - self.now()

    def is_due(self, last_run_at: datetime | None) -> schedstate:
        """Celery's contract: due now?, and seconds until it is worth asking again."""
        now = self.now()
        occurrence = self.occurrence(last_run_at, now)
        fire = self.next_due(last_run_at) if occurrence is None else occurrence.next_fire
        wait_s = None if fire is None else max((fire - now).total_seconds(), 0.0)
        return schedstate(occurrence is not None, wait_s)

    def as_json(self) -> dict[str, Any]:
        """The tagged form stored in a RedBeat definition."""
        return {
            "__type__": SCHEDULE_TYPE,
            "timing": self.timing.as_dict(),
            "scheduled_from": self.scheduled_from.isoformat(),
            "misfire": self.misfire.value,
            "catch_up_max": self.catch_up_max,
            "calendars": [calendar.as_dict() for calendar in self.plan.calendars],
            "on_excluded": self.plan.on_excluded.value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingSchedule:
        """The inverse of :meth:`as_json` (without its tag)."""
        return cls(
            Timing.from_dict(data["timing"]),
            scheduled_from=datetime.fromisoformat(data["scheduled_from"]),
            misfire=Misfire(data["misfire"]),
            catch_up_max=data.get("catch_up_max", DEFAULT_CATCH_UP_MAX),  # older entries: none
            calendars=[Calendar.from_dict(c) for c in data.get("calendars", ())],
            on_excluded=data.get("on_excluded", OnExcluded.SKIP),
        )

    def but_from(self, scheduled_from: datetime) -> TimingSchedule:
        """This schedule planned from another instant."""
        return type(self)(
            self.timing, scheduled_from, self.misfire, catch_up_max=self.catch_up_max,
            calendars=self.plan.calendars, on_excluded=self.plan.on_excluded,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimingSchedule):
            return NotImplemented
        return (self.plan, self.scheduled_from, self.misfire, self.catch_up_max) == (
            other.plan,
            other.scheduled_from,
            other.misfire,
            other.catch_up_max,
        )

    def __repr__(self) -> str:
        return f"<TimingSchedule {self.plan.describe()} from {self.scheduled_from.isoformat()}>"


class ScheduleEncoder(RedBeatJSONEncoder):
    """RedBeat's encoder, plus our tag: RedBeat would refuse a ``BaseSchedule`` it does not know."""

    def default(self, o: object) -> Any:
        if isinstance(o, TimingSchedule):
            return o.as_json()
        return super().default(o)


class ScheduleDecoder(RedBeatJSONDecoder):
    """RedBeat's decoder, plus our tag."""

    def dict_to_object(self, d: dict[str, Any]) -> Any:
        if d.get("__type__") == SCHEDULE_TYPE:
            return TimingSchedule.from_json(d)
        return super().dict_to_object(d)
