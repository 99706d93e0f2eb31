"""SQL tables of bgproc: process groups, process requests and the Process Monitor's runs.

Statuses are str enums stored as plain strings (no native DB enums), so adding a
status never needs a migration. Timestamps are always aware UTC in Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from bgproc.statuses import Channel, RequestStatus, RunStatus
from bgproc.timing.walltime import utc_now

ALEMBIC_VERSION_TABLE = "bgproc_alembic_version"  # ours alone, beside any host application's
SCHEMA_REVISION = "0013"  # the migration these tables match (a test holds it to Alembic's head)

# Deterministic constraint names: Alembic (and SQLite batch mode) need names to alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones, so UTC is stored there as naive text; PostgreSQL gets
    ``timestamptz``. Naive values are refused: their meaning would depend on the machine.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _str_enum(enum_class: type[StrEnum]) -> Enum:
    """A VARCHAR(16) holding the enum's values, read back as members; no DB constraint.

    Unknown strings are refused on write (``validate_strings``) so a typo never lands.
    """
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        validate_strings=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    """Declarative base holding bgproc's metadata (what the migrations must match)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite needs plain INTEGER for an autoincrementing rowid primary key.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class InstallationKey(Base):
    """The installation's random key, made with the schema (migration 0003): it signs what
    an ad-hoc run's message carries, which only holders of the database can then forge."""

    __tablename__ = "bgproc_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(64))


class ProcessGroup(Base):
    """Processes run one after another as one unit (Etendo's Process Group)."""

    __tablename__ = "bgproc_group"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    stop_on_error: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    prevent_concurrent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
    # Steps belong to their group: replacing the list replaces the rows.
    steps: Mapped[list[ProcessGroupStep]] = relationship(
        order_by="ProcessGroupStep.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class ProcessGroupStep(Base):
    """One process of a group, at its place in the order, with its own parameters."""

    __tablename__ = "bgproc_group_step"

    # CASCADE: a step means nothing without its group.
    group_id: Mapped[int] = mapped_column(
        ForeignKey("bgproc_group.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, … in run order
    process: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProcessCalendar(Base):
    """Named exclusions that requests follow (``bgproc.timing.calendars.Calendar``)."""

    __tablename__ = "bgproc_calendar"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tz: Mapped[str] = mapped_column(String(64))
    dates: Mapped[list[str]] = mapped_column(JSON, default=list)  # YYYY-MM-DD
    yearly: Mapped[list[str]] = mapped_column(JSON, default=list)  # MM-DD
    windows: Mapped[list[str]] = mapped_column(JSON, default=list)  # HH:MM-HH:MM
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class RequestCalendar(Base):
    """A request follows a calendar. CASCADE with the request; RESTRICT: a calendar in use
    cannot be deleted (the service says by which requests)."""

    __tablename__ = "bgproc_request_calendar"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("bgproc_request.id", ondelete="CASCADE"), primary_key=True
    )
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("bgproc_calendar.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class ProcessRequest(Base):
    """What runs and when: the SQL row is the source of truth, Redis entries derive from it.

    It names a process or a group, never both and never neither.
    """

    __tablename__ = "bgproc_request"
    __table_args__ = (
        CheckConstraint("(process IS NULL) <> (group_id IS NULL)", name="process_or_group"),
        # AUTOINCREMENT on SQLite: an id is never reused, even after every row was pruned.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    process: Mapped[str | None] = mapped_column(String(200), index=True)
    # RESTRICT: a group in use by a request cannot be deleted (the service says which).
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("bgproc_group.id", ondelete="RESTRICT"), index=True
    )
    group: Mapped[ProcessGroup | None] = relationship(lazy="joined")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # One document, ``Timing.as_dict()``: tagged with its version, only the fields set, so a
    # new frequency or field needs no migration (read it with ``Timing.from_dict``).
    timing: Mapped[dict[str, Any]] = mapped_column(JSON)
    prevent_concurrent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # with prevent_concurrent: a fire kills the request's run still going, then starts (K8s Replace)
    replace_running: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    misfire: Mapped[str] = mapped_column(String(16), default="run-once", server_default="run-once")
    catch_up_max: Mapped[int | None] = mapped_column(Integer)  # misfire catch-up's bound
    on_excluded: Mapped[str] = mapped_column(String(24), default="skip", server_default="skip")
    calendars: Mapped[list[ProcessCalendar]] = relationship(
        secondary="bgproc_request_calendar", order_by="ProcessCalendar.name", lazy="selectin"
    )
    # ``RetryPolicy.as_dict()``; NULL: the process's default (``@process(retries=…)``)
    retry: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # ``Deadlines.as_dict()``; NULL: the process's defaults (``@process(start_deadline=…)``)
    deadlines: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    # ``AlertTargets.as_dict()``; NULL: the process's and the installation's defaults
    alerts: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    status: Mapped[RequestStatus] = mapped_column(
        _str_enum(RequestStatus),
        default=RequestStatus.unscheduled,
        server_default=RequestStatus.unscheduled.value,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class ProcessRun(Base):
    """One execution, as the Process Monitor shows it (design §4)."""

    __tablename__ = "bgproc_run"
    __table_args__ = (
        Index(None, "process", "started_at"),
        # Answers monitor stats without the table (its counts and durations; on PostgreSQL
        # migration 0004 adds INCLUDE (id), left out here as naming it loads that dialect)
        Index(None, "process", "status", "duration_ms"),
        Index(None, "status", "started_at"),
        Index(None, "request_id", "started_at"),
        Index(None, "request_id", "status", "ended_at"),  # each request's last success
        Index(None, "status", "start_by"),  # queued runs past their start deadline (0009)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    # SET NULL: deleting a request keeps the history of what it ran.
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("bgproc_request.id", ondelete="SET NULL")
    )
    process: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[RunStatus] = mapped_column(
        _str_enum(RunStatus), default=RunStatus.queued, server_default=RunStatus.queued.value
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    worker: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    log: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    # none_as_null: "no result" is SQL NULL, not the JSON text 'null'.
    result: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    # The latest ctx.progress report (bgproc.progress.Progress.as_json); NULL: none made.
    progress: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    channel: Mapped[Channel] = mapped_column(
        _str_enum(Channel), default=Channel.scheduler, server_default=Channel.scheduler.value
    )
    # CASCADE: a group's children are part of its run and are pruned with it.
    group_run_id: Mapped[int | None] = mapped_column(
        _BIG_ID, ForeignKey("bgproc_run.id", ondelete="CASCADE"), index=True
    )
    # Retries on error (migration 0007): a retry is a run of its own, linked to the first
    # attempt of its fire. Plain ids, no foreign keys: pruning may take the first attempt
    # before its retries, and SQLite would have to copy the whole table to add one.
    first_run_id: Mapped[int | None] = mapped_column(_BIG_ID, index=True)
    try_number: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    max_tries: Mapped[int | None] = mapped_column(Integer)  # NULL: no retry policy applied
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # its retry is due then
    retry_run_id: Mapped[int | None] = mapped_column(_BIG_ID)  # the run that retries it
    # Deadlines (migration 0009): a queued run not started by ``start_by`` ends expired; a
    # run still going past its maximum runtime is marked overdue once, then.
    start_by: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AlertEvent(Base):
    """The outbox of alerts: one row per (run, event), written in the transaction of the
    status change, sent off the run's path by a notifier holding its lease (migration 0012).
    Plain run and request ids, no foreign keys: pruning a run must not lose its alert."""

    __tablename__ = "bgproc_alert"
    __table_args__ = (
        UniqueConstraint("run_id", "event"),
        Index(None, "sent_at", "due_at"),  # the rows still to send, by when they are due
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(_BIG_ID)
    event: Mapped[str] = mapped_column(String(16))  # the run's status that alerts
    request_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)  # its next try
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)  # a notifier's lease
    claim: Mapped[str | None] = mapped_column(String(64))  # whose lease
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    delivered: Mapped[str | None] = mapped_column(String(200))  # channels done, comma-separated
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
