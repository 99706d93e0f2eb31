"""Tickets: what the runner reads of a run before it starts it, in one read or none.

A queued run's ticket is read in one query (run and request); an ad-hoc run's message
carries its own, signed with the installation's key, so that its first delivery reads
nothing, and only holders of the database can forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select

from bgproc.statuses import Channel, RequestStatus, RunStatus
from bgproc.store.db import read_row, reading
from bgproc.store.models import InstallationKey, ProcessRequest, ProcessRun


@dataclass(frozen=True)
class Ticket:
    """What the runner reads of a run before it starts it (one query, run and request)."""

    run_id: int
    status: RunStatus
    attempt: int
    process: str
    params: dict[str, Any]
    channel: Channel
    request_id: int | None
    request_status: RequestStatus | None  # None: no request (ad-hoc run, or deleted)
    request_prevent_concurrent: bool
    request_group_id: int | None  # the request names a group
    group_run_id: int | None  # this run is a step of that group run
    request_replace_running: bool = False  # kill the request's run still going, then start
    start_by: datetime | None = None  # queued: it must start by then, or it expires
    request_deadlines: dict[str, Any] | None = None  # its request's own (as stored)

    @property
    def is_group_run(self) -> bool:
        """The parent run of a group fire (its steps are runs of their own)."""
        return self.request_group_id is not None and self.group_run_id is None

    @classmethod
    def of_ad_hoc(cls, run_id: int, carried: Any, key: str | None) -> Ticket | None:
        """The ticket of a just-queued ad-hoc run, from what its message carries
        (:func:`ad_hoc_ticket`); None if it carries none, a malformed one, or one that
        ``key`` did not sign (written by someone who can reach Redis, not the database)."""
        if key is None or not isinstance(carried, dict):
            return None
        process, params, signature = (carried.get(k) for k in ("process", "params", "sig"))
        if not (isinstance(process, str) and isinstance(params, dict)):
            return None
        if not isinstance(signature, str) or not hmac.compare_digest(
            signature, _signature(key, run_id, process, params)
        ):
            return None
        return cls(run_id, RunStatus.queued, 1, process, params, Channel.direct, None, None,
                   False, None, None)  # fmt: skip


def ad_hoc_ticket(key: str, run_id: int, process: str, params: dict[str, Any]) -> dict[str, Any]:
    """What an ad-hoc run's message carries so that its worker needs no read to start it:
    its process and parameters (never secret ones: the caller leaves it out then), signed
    with the installation's key."""
    return {"process": process, "params": params, "sig": _signature(key, run_id, process, params)}


def _signature(key: str, run_id: int, process: str, params: dict[str, Any]) -> str:
    signed = json.dumps([run_id, process, params], sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest()


_RUN, _REQUEST = ProcessRun.__table__, ProcessRequest.__table__
# Built once: the runner reads a ticket per run, and building a select costs more than
# running it. Columns in the order Ticket's fields read them.
TICKET_QUERY = (
    select(
        _RUN.c.id,
        _RUN.c.status,
        _RUN.c.attempt,
        _RUN.c.process,
        _RUN.c.params,
        _RUN.c.channel,
        _RUN.c.request_id,
        _REQUEST.c.status,
        _REQUEST.c.prevent_concurrent,
        _REQUEST.c.group_id,
        _RUN.c.group_run_id,
        _REQUEST.c.replace_running,
        _RUN.c.start_by,
        _REQUEST.c.deadlines,
    )
    .select_from(_RUN.outerjoin(_REQUEST))
    .where(_RUN.c.id == bindparam("run_id"))
)


def installation_key(engine: Engine) -> str | None:
    """The installation's key (:class:`~bgproc.store.models.InstallationKey`)."""
    with reading(engine) as connection:
        return connection.scalar(select(InstallationKey.key).where(InstallationKey.id == 1))


def read_ticket(engine: Engine, run_id: int) -> Ticket | None:
    """The run and its request's flags, read without taking any write lock."""
    row = read_row(engine, TICKET_QUERY, {"run_id": run_id})
    if row is None:
        return None
    params = row[4] or {}
    return Ticket(
        run_id=row[0],
        status=RunStatus(row[1]),
        attempt=row[2],
        process=row[3],
        params=json.loads(params) if isinstance(params, str) else dict(params),
        channel=Channel(row[5]),
        request_id=row[6],
        request_status=RequestStatus(row[7]) if row[7] is not None else None,
        request_prevent_concurrent=bool(row[8]),
        request_group_id=row[9],
        group_run_id=row[10],
        request_replace_running=bool(row[11]),
        start_by=_utc(row[12]),
        request_deadlines=_document(row[13]),
    )


def _utc(value: Any) -> datetime | None:
    """A timestamp of a raw row as aware UTC (SQLite's are naive text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _document(value: Any) -> dict[str, Any] | None:
    return json.loads(value) if isinstance(value, str) else value
