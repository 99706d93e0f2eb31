"""The request service: a request's SQL row and its RedBeat entry change together (design §3).

Order of writes, so that a failure never leaves a live entry the database
does not know as scheduled: the SQL change is flushed first (inside a
transaction), then Redis is written, then SQL commits; if Redis fails the SQL
transaction rolls back, and if the commit fails the Redis write is undone.
Removing an entry happens before the SQL change, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from bgproc.errors import Conflict, InvalidInput, NotFound, Unavailable
from bgproc.registry import MAX_PROCESS_NAME_CHARS, ProcessSpec, Registry
from bgproc.services.calendars import calendars_named
from bgproc.services.groups import GROUP_QUEUE, check_schedulable, find_group
from bgproc.services.requestview import RequestView, calendars_of, timing_of, view_of
from bgproc.settings import (
    DEFAULT_REQUESTS_LISTED,
    MAX_NAME_CHARS,
    MAX_REQUEST_ID,
    MAX_REQUESTS_LISTED,
)
from bgproc.statuses import GROUP_LABEL_PREFIX, RequestStatus, RunStatus
from bgproc.store.db import read_session, session_scope
from bgproc.store.models import ProcessGroup, ProcessRequest, ProcessRun
from bgproc.store.retries import stop_retries
from bgproc.timing.alerts import AlertTargets, read_targets
from bgproc.timing.calendars import CalendarPlan, OnExcluded, read_policy, refuse_silenced
from bgproc.timing.deadlines import Deadlines, check_kill_overdue, read_deadlines
from bgproc.timing.fields import PLAN_KEYS, TIMING_KEYS, TimingKind
from bgproc.timing.inputs import parse_choice, parse_int, parse_text
from bgproc.timing.plan import DEFAULT_CATCH_UP_MAX, MAX_CATCH_UP, Misfire, Timing
from bgproc.timing.retry import RETRY_KEYS, RetryPolicy, read_retry
from bgproc.timing.walltime import utc_now

if TYPE_CHECKING:
    from bgproc.store.entries import EntryStore


# -- row -> entry ---------------------------------------------------------------


def placement(row: ProcessRequest, registry: Registry) -> tuple[str, int | None]:
    """The queue and time limit of the row's entry: its process's, or a group's default.

    Raises NotFound for a process that is no longer registered.
    """
    if row.group is not None:
        return GROUP_QUEUE, None
    spec = registry.get(row.process or "")
    return spec.queue, spec.time_limit_s


# -- the service ---------------------------------------------------------------


class RequestService:
    """Create, change, plan and delete process requests; SQL and Redis kept in step."""

    def __init__(
        self,
        engine: Engine,
        entries: Callable[[], EntryStore],
        registry: Registry,
        default_tz: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self._entries = entries
        self.registry = registry
        self.default_tz = default_tz
        self.clock = clock

    @cached_property
    def entries(self) -> EntryStore:
        """The schedule entries, built when first used: reading requests needs no Celery."""
        return self._entries()

    # -- reading ---------------------------------------------------------------

    def get(self, request_id: int, *, reveal: bool = False) -> RequestView:
        """One request; ``reveal`` keeps secret parameters (for the runner only)."""
        with read_session(self.engine) as session:
            return self._view(self._row(session, request_id), reveal=reveal)

    def list(
        self,
        status: str | None = None,
        process: str | None = None,
        after: str | int | None = None,
        limit: str | int = DEFAULT_REQUESTS_LISTED,
    ) -> list[RequestView]:
        """One page of requests in id order: those after id ``after`` (the last id of the
        page before), at most ``limit``; read by the primary key however many there are."""
        count = parse_int(limit, "limit", 1, MAX_REQUESTS_LISTED)
        query = select(ProcessRequest).order_by(ProcessRequest.id).limit(count)
        if after is not None and after != "":
            query = query.where(ProcessRequest.id > parse_int(after, "after", 0, MAX_REQUEST_ID))
        if status:
            query = query.where(
                ProcessRequest.status == parse_choice(status, "status", RequestStatus)
            )
        if process:
            name = parse_text(process, "process", MAX_PROCESS_NAME_CHARS)
            if name.startswith(GROUP_LABEL_PREFIX):
                group = name.removeprefix(GROUP_LABEL_PREFIX)
                query = query.join(ProcessRequest.group).where(ProcessGroup.name == group)
            else:
                query = query.where(ProcessRequest.process == name)
        with read_session(self.engine) as session:
            return [self._view(row) for row in session.scalars(query)]

    def next_runs(self, request_id: int, count: int) -> list[datetime]:
        """The next fires from now on (the current second included, as ``preview``): a
        scheduled request's from its entry, whose pending fire may have passed (no beat
        fired it yet); an unscheduled one's as if scheduled now; none for a complete one."""
        view = self.get(request_id)
        if view.status is RequestStatus.complete or count <= 0:
            return []
        now = self.clock()
        plan = view.plan
        if plan.timing.kind is TimingKind.IMMEDIATE:
            plan = replace(plan, timing=replace(plan.timing, start=now.replace(microsecond=0)))
        fire = self.entries.next_fire(view.id) if view.status is RequestStatus.scheduled else None
        if fire is None:
            return plan.anchored(now).upcoming(now, count)
        return plan.upcoming(max(fire, now), count)

    # -- writing ---------------------------------------------------------------

    def create(self, fields: Mapping[str, Any], schedule: bool = True) -> RequestView:
        """Store a new request from loose fields (CLI strings are fine); schedule it unless told."""
        now = self.clock()
        with self._session() as session:
            row = ProcessRequest(status=RequestStatus.unscheduled, created_at=now, updated_at=now)
            self._set_target(session, row, fields)
            timing = Timing.build(_timing_fields(fields), now=now, default_tz=self.default_tz)
            row.name = _name(fields.get("name"))
            row.prevent_concurrent = bool(fields.get("prevent_concurrent"))
            row.replace_running = self._replace_running(row, fields)
            row.misfire = self._misfire(fields).value
            row.catch_up_max = _catch_up_max(fields, row.misfire)
            row.retry = _retry(fields)
            row.deadlines = self._deadlines(row, fields)
            row.alerts = _alerts(fields)
            anchored = timing.anchored(now) if timing.kind is TimingKind.SCHEDULED else timing
            row.timing = anchored.as_dict()
            self._set_calendars(session, row, fields, fields, now)
            session.add(row)
            session.flush()
            if schedule:
                self._plan(session, row, now)
            return self._view(row)

    def update(self, request_id: int, fields: Mapping[str, Any]) -> RequestView:
        """Change the given fields; a scheduled request is rescheduled in the same step."""
        now = self.clock()
        with self._session() as session:
            row = self._row(session, request_id)
            stored = self._fields_of(row)
            if fields.get("timing") or fields.get("frequency"):
                stored = {k: v for k, v in stored.items() if k not in PLAN_KEYS}
            merged = {**stored, **{k: v for k, v in fields.items() if v is not None}}
            new_process, new_group = fields.get("process"), fields.get("group")
            if new_group and not new_process:  # to a group: its steps have the params
                merged["process"] = None
                merged["params"] = fields.get("params") or {}
            elif new_process and not new_group:
                merged["group"] = None
                if new_process != row.process:
                    merged["params"] = fields.get("params") or {}
            self._set_target(session, row, merged)
            timing = Timing.build(_timing_fields(merged), now=now, default_tz=self.default_tz)
            row.name = _name(merged.get("name"))
            row.prevent_concurrent = bool(merged.get("prevent_concurrent"))
            if fields.get("prevent_concurrent") is False and "replace_running" not in fields:
                merged["replace_running"] = False  # --allow-concurrent ends replacing too
            row.replace_running = self._replace_running(row, merged)
            row.misfire = self._misfire(merged).value
            row.catch_up_max = _catch_up_max(merged, row.misfire, given=fields)
            row.retry = _retry(merged)
            row.deadlines = self._deadlines(row, merged)
            row.alerts = _alerts(merged)
            row.updated_at = now
            anchored = timing.anchored(now) if timing.kind is TimingKind.SCHEDULED else timing
            row.timing = anchored.as_dict()
            self._set_calendars(session, row, merged, fields, now)
            if row.status is RequestStatus.scheduled:
                self._plan(session, row, now)
            return self._view(row)

    def schedule(self, request_id: int) -> RequestView:
        """Write the entry (Etendo's Schedule button); refused when already scheduled."""
        with self._session() as session:
            row = self._row(session, request_id)
            if row.status is RequestStatus.scheduled:
                raise Conflict(f"request {request_id} is already scheduled (use reschedule)")
            self._plan(session, row, self.clock())
            return self._view(row)

    def reschedule(self, request_id: int) -> RequestView:
        """Write the entry afresh, the next fire counted from now."""
        with self._session() as session:
            row = self._row(session, request_id)
            self._plan(session, row, self.clock())
            return self._view(row)

    def unschedule(self, request_id: int) -> RequestView:
        """Remove the entry, then mark the request unscheduled; its retries still waiting
        end ``skipped`` (they would be refused when due anyway: say so now)."""
        with self._session() as session:
            row = self._row(session, request_id)
            self._redis(lambda: self.entries.remove(row.id))
            now = self.clock()
            row.status = RequestStatus.unscheduled
            row.updated_at = now
            why = f"skipped: request {row.id} was unscheduled before this retry was due"
            stop_retries(session, ProcessRun.request_id == row.id, RunStatus.skipped, why, now)
            return self._view(row)

    def complete(self, request_id: int) -> None:
        """Beat found no fire left: a scheduled request becomes complete (idempotent)."""
        with self._session() as session:
            row = session.get(ProcessRequest, request_id)
            if row is not None and row.status is RequestStatus.scheduled:
                row.status = RequestStatus.complete
                row.updated_at = self.clock()

    def delete(self, request_id: int) -> None:
        """Delete an unscheduled or complete request; a scheduled one is refused (design §3)."""
        with self._session() as session:
            row = self._row(session, request_id)
            if row.status is RequestStatus.scheduled:
                raise Conflict(f"request {request_id} is scheduled; unschedule it first")
            self._redis(lambda: self.entries.remove(row.id))
            session.delete(row)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A transaction for another service that re-plans requests (calendars): Redis
        writes made in it are undone if it does not commit."""
        with self._session() as session:
            yield session

    def replan(self, session: Session, request_ids: Sequence[int], now: datetime) -> None:
        """Put afresh the entries of those of ``request_ids`` that are scheduled, from ``now``
        (their calendars changed), in the caller's transaction."""
        if not request_ids:
            return
        query = select(ProcessRequest).where(
            ProcessRequest.id.in_(request_ids), ProcessRequest.status == RequestStatus.scheduled
        )
        for row in session.scalars(query):
            session.refresh(row, ["calendars"])
            self._plan(session, row, now)

    # -- inner workings ----------------------------------------------------------

    def _set_calendars(
        self,
        session: Session,
        row: ProcessRequest,
        fields: Mapping[str, Any],
        given: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """The calendars (``calendars``: names; an empty list clears them) and what an
        excluded fire becomes; a plan whose every fire they exclude is refused."""
        timing = timing_of(row)
        policy = read_policy(fields.get("on_excluded"), timing)
        if given.get("calendars") is not None:
            row.calendars = calendars_named(session, given["calendars"])
        row.on_excluded = policy.value
        anchored = timing.anchored(now)
        if anchored.kind is TimingKind.IMMEDIATE:
            anchored = replace(anchored, start=now.replace(microsecond=0))
        refuse_silenced(CalendarPlan(anchored, calendars_of(row), policy), now)

    def _plan(self, session: Session, row: ProcessRequest, now: datetime) -> None:
        """Put the entry for ``row`` (or mark it complete when nothing is left to fire)."""
        if row.group is not None:
            check_schedulable(row.group)
        queue, time_limit_s = placement(row, self.registry)
        timing = timing_of(row)
        if timing.kind is TimingKind.IMMEDIATE:
            timing = replace(timing, start=now.replace(microsecond=0))
        calendars = calendars_of(row)
        if not CalendarPlan(timing.anchored(now), calendars, OnExcluded(row.on_excluded)).upcoming(
            now, 1
        ):
            self._redis(lambda: self.entries.remove(row.id))
            row.status = RequestStatus.complete
            return
        row.status = RequestStatus.scheduled
        row.updated_at = now
        flag_modified(row, "updated_at")  # else the model's onupdate stamps a later time
        session.flush()
        self._redis(
            lambda: self.entries.put(
                row.id,
                timing.anchored(now),
                scheduled_from=now,
                misfire=row.misfire,
                queue=queue,
                time_limit_s=time_limit_s,
                catch_up_max=row.catch_up_max,
                calendars=calendars,
                on_excluded=row.on_excluded,
            )
        )
        session.info.setdefault("on_rollback", []).append(lambda: self.entries.remove(row.id))

    def _set_target(self, session: Session, row: ProcessRequest, fields: Mapping[str, Any]) -> None:
        """Point ``row`` at the process (with its params) or the group that ``fields`` name."""
        process = str(fields.get("process") or "").strip()
        group = str(fields.get("group") or "").strip()
        if process and group:
            raise InvalidInput("group", "give a process or --group, not both")
        if not group:
            spec, row.params = self._process_and_params(fields)
            row.process, row.group = spec.name, None
            return
        if fields.get("params"):
            raise InvalidInput("param", "a group request takes none: each step has its own")
        try:
            found = find_group(session, group)
        except NotFound:
            raise InvalidInput("group", f"{group!r} is not a process group") from None
        row.process, row.group, row.params = None, found, {}

    def _process_and_params(self, fields: Mapping[str, Any]) -> tuple[ProcessSpec, dict[str, Any]]:
        name = str(fields.get("process") or "").strip()
        if not name:
            raise InvalidInput("process", "is required (or give --group NAME)")
        try:
            spec = self.registry.get(name)
        except NotFound:
            raise InvalidInput("process", f"{name!r} is not a registered process") from None
        return spec, spec.validate_params(fields.get("params") or {})

    def _replace_running(self, row: ProcessRequest, fields: Mapping[str, Any]) -> bool:
        """``--replace-running``: only for a request that prevents concurrent runs, of a
        process whose runs can be killed (the running one must be stopped to replace it)."""
        if not fields.get("replace_running"):
            return False
        if not row.prevent_concurrent:
            raise InvalidInput("replace-running", "needs --prevent-concurrent")
        if row.process is None:
            raise InvalidInput("replace-running", "is for a process, not a group")
        spec = self.registry.get(row.process)
        if not spec.killable:
            raise InvalidInput(
                "replace-running", f"{row.process} is not killable: its run cannot be replaced"
            )
        if spec.prevent_concurrent:  # its lease is the process's: the run may be another's
            raise InvalidInput(
                "replace-running", f"{row.process} allows one run at a time of any request"
            )
        return True

    def _deadlines(self, row: ProcessRequest, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The request's own deadlines as stored (None: its process's defaults), refused
        where they cannot work: a kill of a process that cannot be stopped, or a maximum
        runtime of a group run (its steps are runs of their processes)."""
        own = read_deadlines(fields)
        if own is None:
            return None
        if row.process is None:
            if own.max_runtime_s is not None or own.kill_overdue:
                field = "max-runtime" if own.max_runtime_s is not None else "kill-overdue"
                raise InvalidInput(field, "a group run has none (give its processes one)")
            return own.as_dict()
        spec = self.registry.get(row.process)
        check_kill_overdue(own.over(spec.deadlines), spec.killable, f"process {spec.name}")
        return own.as_dict()

    @staticmethod
    def _misfire(fields: Mapping[str, Any]) -> Misfire:
        value = parse_choice(fields.get("misfire") or Misfire.RUN_ONCE.value, "misfire", Misfire)
        assert isinstance(value, Misfire)
        return value

    def _fields_of(self, row: ProcessRequest) -> dict[str, Any]:
        """The stored request as loose fields, so an update can change just a few."""
        fields: dict[str, Any] = timing_of(row).fields()
        fields.update(
            process=row.process,
            group=str(row.group_id) if row.group_id is not None else None,  # by id: renames
            params=row.params,
            name=row.name,
            prevent_concurrent=row.prevent_concurrent,
            replace_running=row.replace_running,
            misfire=row.misfire,
            catch_up_max=row.catch_up_max,
            on_excluded=row.on_excluded,
        )
        if row.alerts is not None:
            own_targets = AlertTargets.from_dict(row.alerts)
            fields.update(alert_webhook=own_targets.webhook, alert_email=own_targets.email)
        if row.deadlines is not None:
            own = Deadlines.from_dict(row.deadlines)
            fields.update(start_deadline=own.start_s, max_runtime=own.max_runtime_s,
                          kill_overdue=own.kill_overdue)  # fmt: skip
        if row.retry is not None:
            policy = RetryPolicy.from_dict(row.retry)
            fields.update(zip(RETRY_KEYS, (policy.retries, policy.backoff_s, policy.max_s,
                                            policy.jitter), strict=True))  # fmt: skip
        return fields

    def _row(self, session: Session, request_id: int) -> ProcessRequest:
        if not 0 < request_id <= MAX_REQUEST_ID:
            raise NotFound("request", request_id)
        row = session.get(ProcessRequest, request_id)
        if row is None:
            raise NotFound("request", request_id)
        return row

    def _view(self, row: ProcessRequest, reveal: bool = False) -> RequestView:
        return view_of(row, self.registry, reveal=reveal)

    @staticmethod
    def _redis(action: Callable[[], object]) -> None:
        try:
            action()
        except _redis_errors() as error:
            raise Unavailable.of_redis(error) from None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A transaction; Redis writes made inside it are undone if it does not commit."""
        session: Session | None = None
        try:
            with session_scope(self.engine) as session:
                yield session
        except BaseException:
            for undo in session.info.get("on_rollback", []) if session else []:
                with suppress(*_redis_errors()):  # `bgproc sync` repairs it later
                    undo()
            raise


def _redis_errors() -> tuple[type[Exception], ...]:
    """What a failing Redis raises, imported once Redis is used: reading requests never is."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def _timing_fields(fields: Mapping[str, Any]) -> dict[str, object]:
    return {k: fields.get(k) for k in TIMING_KEYS if fields.get(k) is not None}


def _catch_up_max(
    fields: Mapping[str, Any], misfire: str, given: Mapping[str, Any] | None = None
) -> int | None:
    """The bound of ``--misfire catch-up`` (its default if not given); None for the other
    policies, which refuse one given with them (an update that leaves catch-up drops it)."""
    value = fields.get("catch_up_max")
    if misfire != Misfire.CATCH_UP:
        if (given if given is not None else fields).get("catch_up_max") not in (None, ""):
            raise InvalidInput("catch-up-max", "is for --misfire catch-up only")
        return None
    if value in (None, ""):
        return DEFAULT_CATCH_UP_MAX
    return parse_int(value, "catch-up-max", 1, MAX_CATCH_UP)


def _alerts(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's own alert targets as stored (None: its process's or the installation's)."""
    targets = read_targets(fields)
    return targets.as_dict() if targets is not None else None


def _retry(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's own retry policy as stored (None: its process's default)."""
    policy = read_retry(fields)
    return policy.as_dict() if policy is not None else None


def _name(value: object) -> str | None:
    if value is None:
        return None
    return parse_text(str(value).strip(), "name", MAX_NAME_CHARS) or None
