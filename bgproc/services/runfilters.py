"""The Process Monitor's filters, read from user text the same way by every front end.

``monitor list`` and ``GET /api/v1/runs`` (and the monitor page) take the same words:
a process or a group, a status, a request id, a period (a date-time or a duration back
from now) and a keyset page (``before``); each refusal names its field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bgproc.errors import InvalidInput
from bgproc.registry import MAX_PROCESS_NAME_CHARS
from bgproc.settings import MAX_REQUEST_ID
from bgproc.statuses import RunStatus, group_label
from bgproc.timing.inputs import (
    DURATION,
    parse_choice,
    parse_duration,
    parse_instant,
    parse_int,
    parse_text,
)

MAX_LIMIT = 1000  # a page is for reading; more is what --before is for
MAX_ID = 10**12 - 1  # a run id past this is a typo
PAST_INSTANT = "a date-time or a duration back from now (use 2h, 30m or 2027-01-31T09:30)"


def instant_or_ago(text: str | None, field: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """A date-time as ``request create`` reads one, or a duration back from now (``2h``)."""
    if text is None:
        return None
    if DURATION.match(text.strip().lower()):
        return now - parse_duration(text, field)
    return parse_instant(text, zone, now, field, PAST_INSTANT)


def since_filter(text: str | None, zone: ZoneInfo, now: datetime) -> datetime | None:
    """``since``: a time still to come (``+10m`` is one) would match no run: refused."""
    start = instant_or_ago(text, "since", zone, now)
    if start is not None and start > now:
        shown = start.astimezone(zone).isoformat(sep=" ")
        raise InvalidInput(
            "since",
            f"{text!r} is in the future ({shown}); look back with a duration like 2h or 30m",
        )
    return start


def process_filter(text: str | None) -> str | None:
    """A process filter the database can compare (an unregistered name is fine: old runs)."""
    return parse_text(text, "process", MAX_PROCESS_NAME_CHARS) if text else None


def run_filters(
    *,
    zone: ZoneInfo,
    now: datetime,
    process: str | None = None,
    group: str | None = None,
    status: str | None = None,
    request: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: str = "50",
    before: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of :meth:`bgproc.store.runs.RunStore.list` for these words."""
    count = parse_int(limit, "limit", 1, MAX_LIMIT)
    start = since_filter(since, zone, now)
    end = instant_or_ago(until, "until", zone, now)
    if start is not None and end is not None and end <= start:
        raise InvalidInput("until", "must be later than --since")
    if group is not None:
        if process is not None:
            raise InvalidInput("group", "give --process or --group, not both")
        process = group_label(group)
    return {
        "process": process_filter(process),
        "status": RunStatus(parse_choice(status, "status", RunStatus)) if status else None,
        "request_id": parse_int(request, "request", 1, MAX_REQUEST_ID) if request else None,
        "since": start,
        "until": end,
        "limit": count,
        "before_id": parse_int(before, "before", 1, MAX_ID) if before else None,
    }
