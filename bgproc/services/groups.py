"""The process group service: named, ordered lists of processes run as one unit (design §1).

Each step's parameters are checked by the registry exactly as a request's are, and
shown with secrets masked. A group is referred to by name or id; a request names
it by id, so renaming a group never breaks a request, and deleting one in use is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bgproc.errors import Conflict, InvalidInput, NotFound
from bgproc.registry import ProcessSpec, Registry
from bgproc.settings import DEFAULT_QUEUE, MAX_NAME_CHARS
from bgproc.statuses import RequestStatus
from bgproc.store.db import named_row, read_session, session_scope
from bgproc.store.models import ProcessGroup, ProcessGroupStep, ProcessRequest
from bgproc.timing.walltime import utc_now

# A group's own run is a parent that starts its steps: it goes to the default queue,
# which every plain `bgproc worker` consumes (steps keep their own process's queue).
GROUP_QUEUE = DEFAULT_QUEUE
MAX_DESCRIPTION_CHARS = 2000
MAX_STEPS = 100  # a group is a short list of processes, not a program
MAX_LISTED_REQUESTS = 10  # a refusal names this many requests at most


@dataclass(frozen=True)
class StepView:
    """One step of a group: its place (from 1), its process and its parameters."""

    position: int
    process: str
    params: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"position": self.position, "process": self.process, "params": self.params}


@dataclass(frozen=True)
class GroupView:
    """A group as callers see it: ordered steps, secrets masked unless revealed."""

    id: int
    name: str
    description: str | None
    stop_on_error: bool
    prevent_concurrent: bool
    steps: tuple[StepView, ...]
    requests: tuple[int, ...]  # ids of the requests that name this group
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``group show --json``."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "stop_on_error": self.stop_on_error,
            "prevent_concurrent": self.prevent_concurrent,
            "steps": [step.as_json() for step in self.steps],
            "requests": list(self.requests),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# -- rows, shared with the request service -----------------------------------------------


def find_group(session: Session, ident: object) -> ProcessGroup:
    """The group named ``ident``, or with that id when it is all digits; else NotFound."""
    return named_row(session, ProcessGroup, ident, "group")


def check_schedulable(group: ProcessGroup) -> None:
    """An empty group cannot be scheduled: it would run nothing, every time."""
    if not group.steps:
        raise InvalidInput(
            "group",
            f"{group.name} has no steps, so it cannot be scheduled "
            f"(add one: bgproc group update {group.name} --step PROCESS)",
        )


# -- the service ---------------------------------------------------------------------------


class GroupService:
    """Create, list, show, change and delete process groups."""

    def __init__(
        self, engine: Engine, registry: Registry, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock

    # -- reading ---------------------------------------------------------------

    def get(self, ident: object, *, reveal: bool = False) -> GroupView:
        """One group by name or id; ``reveal`` keeps secret step parameters (runtime only)."""
        with read_session(self.engine) as session:
            row = find_group(session, ident)
            return self._view(row, _users(session, [row.id]).get(row.id, ()), reveal)

    def list(self) -> list[GroupView]:
        """Every group, by name."""
        with read_session(self.engine) as session:
            rows = list(session.scalars(select(ProcessGroup).order_by(ProcessGroup.name)))
            users = _users(session, [row.id for row in rows])
            return [self._view(row, users.get(row.id, ())) for row in rows]

    # -- writing ---------------------------------------------------------------

    def create(self, fields: Mapping[str, Any]) -> GroupView:
        """A new group from loose fields: ``name``, ``description``, ``steps``
        (each ``{"process": …, "params": {…}}``), ``stop_on_error``, ``prevent_concurrent``."""
        now = self.clock()
        name = _name(fields.get("name"))
        steps = self._steps(fields.get("steps") or ())
        row = ProcessGroup(
            name=name,
            description=_description(fields.get("description")),
            stop_on_error=bool(fields.get("stop_on_error")),
            prevent_concurrent=bool(fields.get("prevent_concurrent")),
            steps=steps,
            created_at=now,
            updated_at=now,
        )
        with self._writing(name) as session:
            if session.scalar(select(ProcessGroup.id).where(ProcessGroup.name == name)):
                raise _taken(name)
            session.add(row)
            session.flush()
            return self._view(row, ())

    def update(self, ident: object, fields: Mapping[str, Any]) -> GroupView:
        """Change the given fields; given ``steps`` replace all the steps."""
        now = self.clock()
        name = _name(fields["name"]) if fields.get("name") is not None else None
        steps = self._steps(fields["steps"]) if fields.get("steps") is not None else None
        with self._writing(name) as session:
            row = find_group(session, ident)
            if name is not None and name != row.name:
                if session.scalar(select(ProcessGroup.id).where(ProcessGroup.name == name)):
                    raise _taken(name)
                row.name = name
            if "description" in fields and fields["description"] is not None:
                row.description = _description(fields["description"])
            for flag in ("stop_on_error", "prevent_concurrent"):
                if fields.get(flag) is not None:
                    setattr(row, flag, bool(fields[flag]))
            if steps is not None:
                row.steps = []
                session.flush()  # the old steps go before new ones take their positions
                row.steps = steps
            row.updated_at = now
            session.flush()
            return self._view(row, _users(session, [row.id]).get(row.id, ()))

    def delete(self, ident: object) -> GroupView:
        """Delete a group that no request names (the requests must be changed or deleted)."""
        with session_scope(self.engine) as session:
            row = find_group(session, ident)
            users = _users(session, [row.id]).get(row.id, ())
            if users:
                raise Conflict(_in_use(session, row.name, users))
            view = self._view(row, ())
            session.delete(row)
            return view

    # -- inner workings ----------------------------------------------------------

    def _steps(self, given: Sequence[Mapping[str, Any]]) -> list[ProcessGroupStep]:
        """Validated step rows; an error names the step (from 1) and the field in it."""
        if len(given) > MAX_STEPS:
            raise InvalidInput("step", f"at most {MAX_STEPS} steps")
        steps: list[ProcessGroupStep] = []
        for position, step in enumerate(given, 1):
            try:
                spec = self._spec(step.get("process"))
                params = spec.validate_params(step.get("params") or {})
            except InvalidInput as error:
                raise InvalidInput(f"step {position}: {error.field}", error.why) from None
            steps.append(ProcessGroupStep(position=position, process=spec.name, params=params))
        return steps

    def _spec(self, name: object) -> ProcessSpec:
        text = str(name or "").strip()
        if not text:
            raise InvalidInput("process", "is required")
        try:
            return self.registry.get(text)
        except NotFound:
            raise InvalidInput("process", f"{text!r} is not a registered process") from None

    def _view(self, row: ProcessGroup, users: Sequence[int], reveal: bool = False) -> GroupView:
        return GroupView(
            id=row.id,
            name=row.name,
            description=row.description,
            stop_on_error=row.stop_on_error,
            prevent_concurrent=row.prevent_concurrent,
            steps=tuple(
                StepView(step.position, step.process, self._shown(step, reveal))
                for step in row.steps
            ),
            requests=tuple(users),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _shown(self, step: ProcessGroupStep, reveal: bool) -> dict[str, Any]:
        """A step's parameters with secrets masked; an unregistered process's as stored."""
        if reveal:
            return dict(step.params)
        try:
            return self.registry.get(step.process).masked(step.params)
        except NotFound:
            return dict(step.params)

    @contextmanager
    def _writing(self, name: str | None) -> Iterator[Session]:
        """A transaction in which a name taken meanwhile (the unique index) is a Conflict."""
        try:
            with session_scope(self.engine) as session:
                yield session
        except IntegrityError:
            if name is None:
                raise
            raise _taken(name) from None


def _users(session: Session, group_ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The ids of the requests naming each group, in one query."""
    if not group_ids:
        return {}
    query = (
        select(ProcessRequest.group_id, ProcessRequest.id)
        .where(ProcessRequest.group_id.in_(group_ids))
        .order_by(ProcessRequest.id)
    )
    users: dict[int, list[int]] = {}
    for group_id, request_id in session.execute(query):
        users.setdefault(group_id, []).append(request_id)
    return {k: tuple(v) for k, v in users.items()}


def _in_use(session: Session, name: str, users: Sequence[int]) -> str:
    """Why a group cannot go: which requests name it, the scheduled ones first."""
    scheduled = session.scalar(
        select(func.count())
        .select_from(ProcessRequest)
        .where(ProcessRequest.id.in_(users), ProcessRequest.status == RequestStatus.scheduled)
    )
    shown = ", ".join(str(i) for i in users[:MAX_LISTED_REQUESTS])
    more = (
        f" and {len(users) - MAX_LISTED_REQUESTS} more" if len(users) > MAX_LISTED_REQUESTS else ""
    )
    which = f"{scheduled} of them scheduled" if scheduled else "none of them scheduled"
    return (
        f"group {name} is used by request(s) {shown}{more} ({which}); "
        "unschedule and delete them, or point them at another process or group, first"
    )


def _taken(name: str) -> Conflict:
    return Conflict(f"name: a group named {name!r} already exists")


def _name(value: object) -> str:
    """A group name: non-empty printable text that cannot be mistaken for an id."""
    name = str(value if value is not None else "").strip()
    if not name:
        raise InvalidInput("name", "must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput("name", f"longer than {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise InvalidInput("name", "must be printable text")
    if name.isdigit():
        raise InvalidInput("name", f"{name!r} would read as an id; use letters too")
    return name


def _description(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput("description", f"longer than {MAX_DESCRIPTION_CHARS} characters")
    return text or None
