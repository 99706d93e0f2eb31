"""The calendar service: named exclusions that requests follow (issue 17, Quartz's calendars).

A calendar is referred to by name or id. Editing one re-plans, in the same transaction,
every scheduled request that follows it: their entries carry the calendar (beat does no
SQL to decide a fire), so each is put afresh, as ``request update`` does. Deleting a
calendar that a request follows is refused, naming the requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bgproc.errors import Conflict, InvalidInput, NotFound
from bgproc.services.requestview import calendar_value
from bgproc.settings import MAX_NAME_CHARS
from bgproc.store.db import named_row, read_session
from bgproc.store.models import ProcessCalendar, RequestCalendar
from bgproc.timing.calendars import Calendar
from bgproc.timing.walltime import utc_now

if TYPE_CHECKING:
    from bgproc.services.requests import RequestService

MAX_LISTED_REQUESTS = 10  # a refusal names this many requests at most
LISTS = ("dates", "yearly", "windows")


@dataclass(frozen=True)
class CalendarView:
    """A calendar as callers see it, with the requests that follow it."""

    id: int
    calendar: Calendar
    requests: tuple[int, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.calendar.name

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``calendar show --json``."""
        return {
            "id": self.id,
            "name": self.name,
            **self.calendar.fields(),
            "description": self.calendar.describe(),
            "requests": list(self.requests),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# -- rows, shared with the request service -----------------------------------------------


def find_calendar(session: Session, ident: object) -> ProcessCalendar:
    """The calendar named ``ident``, or with that id when it is all digits; else NotFound."""
    return named_row(session, ProcessCalendar, ident, "calendar")


def calendars_named(session: Session, names: Iterable[object]) -> list[ProcessCalendar]:
    """The calendars a request names (``--calendar``), each once; an unknown one is bad input."""
    rows: dict[int, ProcessCalendar] = {}
    for name in names:
        if not str(name).strip():
            continue
        try:
            row = find_calendar(session, name)
        except NotFound:
            raise InvalidInput("calendar", f"{str(name).strip()!r} is not a calendar") from None
        rows[row.id] = row
    return sorted(rows.values(), key=lambda row: row.name)


def followers(session: Session, calendar_id: int) -> list[int]:
    """The ids of the requests that follow a calendar."""
    query = select(RequestCalendar.request_id).where(RequestCalendar.calendar_id == calendar_id)
    return sorted(session.scalars(query))


# -- the service -------------------------------------------------------------------------


class CalendarService:
    """Create, list, show, change and delete calendars."""

    def __init__(
        self, engine: Engine, requests: RequestService, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.requests = requests
        self.clock = clock

    def get(self, ident: object) -> CalendarView:
        with read_session(self.engine) as session:
            row = find_calendar(session, ident)
            return _view(row, followers(session, row.id))

    def values(self, names: Iterable[object]) -> list[Calendar]:
        """The calendars named (``preview --calendar``); an unknown one is bad input."""
        with read_session(self.engine) as session:
            return [calendar_value(row) for row in calendars_named(session, names)]

    def list(self) -> list[CalendarView]:
        """Every calendar, by name."""
        with read_session(self.engine) as session:
            rows = session.scalars(select(ProcessCalendar).order_by(ProcessCalendar.name))
            return [_view(row, followers(session, row.id)) for row in rows]

    def create(self, fields: Mapping[str, Any]) -> CalendarView:
        """A new calendar from loose fields: name, tz, dates, yearly, windows."""
        name = _name(fields.get("name"))
        calendar = Calendar.build(
            name, fields.get("tz") or self.requests.default_tz,
            *(fields.get(key) or () for key in LISTS),
        )  # fmt: skip
        now = self.clock()
        with self.requests.transaction() as session:
            if session.scalar(select(ProcessCalendar.id).where(ProcessCalendar.name == name)):
                raise Conflict(f"name: a calendar named {name!r} already exists")
            row = ProcessCalendar(name=name, created_at=now, updated_at=now)
            _store(row, calendar)
            session.add(row)
            session.flush()
            return _view(row, [])

    def update(self, ident: object, fields: Mapping[str, Any]) -> CalendarView:
        """Change the given fields (a given list replaces the old one; an empty one clears
        it) and re-plan every scheduled request that follows the calendar, at once."""
        now = self.clock()
        with self.requests.transaction() as session:
            row = find_calendar(session, ident)
            old = calendar_value(row).fields()
            merged = {k: fields[k] if fields.get(k) is not None else old[k] for k in old}
            calendar = Calendar.build(row.name, merged["tz"], *(merged[k] for k in LISTS))
            _store(row, calendar)
            row.updated_at = now
            session.flush()
            users = followers(session, row.id)
            self.requests.replan(session, users, now)
            return _view(row, users)

    def delete(self, ident: object) -> CalendarView:
        """Delete a calendar that no request follows."""
        with self.requests.transaction() as session:
            row = find_calendar(session, ident)
            users = followers(session, row.id)
            if users:
                raise Conflict(_in_use(row.name, users))
            view = _view(row, [])
            session.delete(row)
            return view


def _store(row: ProcessCalendar, calendar: Calendar) -> None:
    fields = calendar.fields()
    row.tz = fields["tz"]
    row.dates, row.yearly, row.windows = (fields[k] for k in LISTS)


def _view(row: ProcessCalendar, users: Sequence[int]) -> CalendarView:
    return CalendarView(row.id, calendar_value(row), tuple(users), row.created_at, row.updated_at)


def _in_use(name: str, users: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in users[:MAX_LISTED_REQUESTS])
    more = len(users) - MAX_LISTED_REQUESTS
    shown += f" and {more} more" if more > 0 else ""
    return (
        f"calendar {name} is followed by request(s) {shown}"
        "; take it off them first (bgproc request update ID --no-calendar, or --calendar OTHER)"
    )


def _name(value: object) -> str:
    """A calendar name: non-empty printable text that cannot be mistaken for an id."""
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
