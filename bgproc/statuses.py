"""The words requests and runs are told by: their statuses, how a run was started, and how
a group is named where a process would be.

Apart from the tables (:mod:`bgproc.store.models`) so that a command can speak them without
loading SQLAlchemy.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    """Where a process request is in its lifecycle (design §3)."""

    unscheduled = "unscheduled"
    scheduled = "scheduled"
    complete = "complete"


class RunStatus(StrEnum):
    """What became of one run (design §4)."""

    queued = "queued"
    processing = "processing"
    success = "success"
    error = "error"
    skipped = "skipped"
    killed = "killed"
    misfired = "misfired"
    lost = "lost"
    expired = "expired"  # not started by its start deadline: never ran


class Channel(StrEnum):
    """How a run was started: by its plan, or by hand with ``bgproc run``."""

    scheduler = "scheduler"
    direct = "direct"


GROUP_LABEL_PREFIX = "group:"  # a group where a process name would be: "group:nightly"


def group_label(name: str) -> str:
    """How a group shows where a process name would: in request lists and run records."""
    return f"{GROUP_LABEL_PREFIX}{name}"
