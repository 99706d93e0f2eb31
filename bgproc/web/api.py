"""``/api/v1``: every listing and action of the CLI, as the CLI's ``--json`` documents.

Each handler parses like its command, calls the same service and returns the same
document (:mod:`bgproc.services.documents`); the endpoint wrapper checks access, runs it in a
thread (the services block) and turns bgproc's refusals into ``{"error": …}`` with the
CLI's codes as HTTP statuses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bgproc.errors import InvalidInput
from bgproc.installation import Installation
from bgproc.services import documents
from bgproc.services.hourly import hourly_stats, hourly_window
from bgproc.services.preview import MAX_FIRES, preview
from bgproc.services.runfilters import MAX_ID, process_filter, run_filters, since_filter
from bgproc.settings import DEFAULT_REQUESTS_LISTED, MAX_REQUEST_ID
from bgproc.statuses import RunStatus
from bgproc.store.runview import RunView
from bgproc.timing.alerts import ALERT_KEYS
from bgproc.timing.deadlines import DEADLINE_KEYS
from bgproc.timing.fields import TIMING_KEYS
from bgproc.timing.inputs import field_label, parse_int
from bgproc.timing.retry import RETRY_KEYS
from bgproc.web.auth import Access
from bgproc.web.errors import JSON, Failure, failure_of

logger = logging.getLogger("bgproc.web")

PREFIX = "/api/v1"
RUNNING_SHOWN = 1000  # as ``monitor workers``: at most this many running runs are read
DEFAULT_NEXT = 5
DEFAULT_KILL_WAIT_S = 10  # a kill waits this long for a running run to stop
MAX_KILL_WAIT_S = 60
MAX_BODY_BYTES = 1_000_000
REQUEST_FIELDS = frozenset(
    {*TIMING_KEYS, *RETRY_KEYS, *DEADLINE_KEYS, "process", "group", "params", "name",
     "prevent_concurrent", "replace_running", "misfire", "catch_up_max", "calendars",
     "on_excluded", *ALERT_KEYS}
)  # fmt: skip
RUN_FILTERS = ("process", "group", "status", "request", "since", "until", "limit", "before")


@dataclass(frozen=True)
class Web:
    """What every handler needs: the installation and the access rules."""

    installation: Installation
    access: Access


@dataclass(frozen=True)
class Call:
    """One API call: its path and query words, and its JSON body (empty for a GET)."""

    request: Request
    body: Mapping[str, Any] = field(default_factory=dict)

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Installation, Call], Any]


@dataclass(frozen=True)
class Endpoint:
    """One route of the API, with what its OpenAPI description says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    query: tuple[str, ...] = ()
    acts: bool = False  # changes something: needs the operator
    body: str = ""  # what the JSON body holds, if it takes one
    status: int = 200


def zone_of(installation: Installation) -> ZoneInfo:
    """The zone that times are read in: BGPROC_TIMEZONE, as the CLI reads it."""
    try:
        return ZoneInfo(installation.settings.timezone)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        name = installation.settings.timezone
        raise InvalidInput("BGPROC_TIMEZONE", f"{name!r} is not a time zone") from None


def request_id(text: str) -> int:
    return parse_int(text, "request id", 1, MAX_REQUEST_ID)


def run_id(text: str) -> int:
    return parse_int(text, "run id", 1, MAX_ID)


def request_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request's fields from a JSON body, as ``request create`` options give them."""
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key not in REQUEST_FIELDS:
            raise InvalidInput(key, "is not a field of a request")
        if key == "calendars":  # an empty list is kept: it clears them
            fields[key] = _names(value, "calendar")
            continue
        if value is None or value == "":
            continue
        if key == "days" and isinstance(value, list):
            value = ",".join(str(day) for day in value)
        if key == "params" and not isinstance(value, dict):
            raise InvalidInput("param", "must be an object of KEY: VALUE")
        if key in ("prevent_concurrent", "retry_jitter", "kill_overdue") and not isinstance(
            value, bool
        ):
            raise InvalidInput(field_label(key), "must be true or false")
        fields[key] = value
    return fields


# -- shared reads (the pages show the same) ----------------------------------------------


def run_details(installation: Installation, number: int) -> dict[str, Any]:
    """``monitor show --json`` of run ``number``."""
    runs, registry = installation.runs, installation.registry
    view = runs.get(number).masked(registry)
    steps = [step.masked(registry) for step in runs.steps(view.id)]
    whereabouts = None
    if view.status is RunStatus.queued and view.task_id:
        whereabouts = installation.redelivery.whereabouts(view.task_id, installation.queues)
    return documents.run_document(view, steps, whereabouts)


def list_runs(installation: Installation, words: Mapping[str, str | None]) -> list[RunView]:
    """``monitor list``'s runs for these filter words, masked."""
    given = {k: v for k, v in words.items() if k in RUN_FILTERS and v not in (None, "")}
    query = run_filters(zone=zone_of(installation), now=datetime.now(UTC), **given)
    registry = installation.registry
    return [view.masked(registry) for view in installation.runs.list(**query)]


def request_details(installation: Installation, number: int, count: int) -> dict[str, Any]:
    """``request show --json`` with ``count`` next fires."""
    service = installation.requests
    return documents.request_document(service.get(number), service.next_runs(number, count))


# -- handlers ----------------------------------------------------------------------------


def get_requests(installation: Installation, call: Call) -> Any:
    views = installation.requests.list(
        status=call.query("status"),
        process=call.query("process"),
        after=call.query("after"),
        limit=call.query("limit") or DEFAULT_REQUESTS_LISTED,
    )
    return [view.as_json() for view in views]


def create_request(installation: Installation, call: Call) -> Any:
    body = dict(call.body)
    schedule = body.pop("schedule", True)
    if not isinstance(schedule, bool):
        raise InvalidInput("schedule", "must be true or false")
    view = installation.requests.create(request_fields(body), schedule=schedule)
    return request_details(installation, view.id, DEFAULT_NEXT)


def get_request(installation: Installation, call: Call) -> Any:
    given = call.query("next")
    count = parse_int(given, "next", 0, MAX_FIRES) if given is not None else DEFAULT_NEXT
    return request_details(installation, request_id(call.path("id")), count)


def update_request(installation: Installation, call: Call) -> Any:
    view = installation.requests.update(request_id(call.path("id")), request_fields(call.body))
    return request_details(installation, view.id, DEFAULT_NEXT)


def lifecycle(verb: str) -> Handler:
    """Schedule, unschedule or reschedule: ``request VERB ID --json``."""

    def handler(installation: Installation, call: Call) -> Any:
        return getattr(installation.requests, verb)(request_id(call.path("id"))).as_json()

    handler.__name__ = f"{verb}_request"
    return handler


def delete_request(installation: Installation, call: Call) -> Any:
    number = request_id(call.path("id"))
    installation.requests.delete(number)
    return {"id": number, "deleted": True}


def get_preview(installation: Installation, call: Call) -> Any:
    query = call.request.query_params
    words = {k.replace("-", "_"): v for k, v in query.items() if v != ""}
    count = parse_int(words.pop("count", "10"), "count", 1, MAX_FIRES)
    names = [name for name in query.getlist("calendar") if name]
    words.pop("calendar", None)
    on_excluded = words.pop("on_excluded", None)
    unknown = sorted(set(words) - set(TIMING_KEYS))
    if unknown:
        raise InvalidInput(unknown[0], "is not a timing field")
    plan, fires = preview(
        words, count, datetime.now(UTC), installation.settings.timezone,
        calendars=installation.calendars.values(names) if names else (), on_excluded=on_excluded,
    )  # fmt: skip
    return documents.preview_document(plan, fires)


def get_runs(installation: Installation, call: Call) -> Any:
    words = {name: call.query(name) for name in RUN_FILTERS}
    views = list_runs(installation, words)
    response = JSON([view.as_json(full=False) for view in views])
    limit = int(words["limit"] or 50)
    if views and len(views) == limit:
        after = {k: v for k, v in words.items() if v and k != "before"}
        query = urlencode({**after, "before": views[-1].id})
        response.headers["link"] = f'<{PREFIX}/runs?{query}>; rel="next"'
    return response


def get_run(installation: Installation, call: Call) -> Any:
    return run_details(installation, run_id(call.path("id")))


def get_log(installation: Installation, call: Call) -> Any:
    offset = parse_int(call.query("offset") or "0", "offset", 0, 10**11)
    return documents.log_document(installation.runs.read_log(run_id(call.path("id")), offset))


def kill_run(installation: Installation, call: Call) -> Any:
    given = call.query("wait")
    wait_s = DEFAULT_KILL_WAIT_S if given is None else parse_int(given, "wait", 0, MAX_KILL_WAIT_S)
    return documents.kill_document(installation.killer.kill(run_id(call.path("id")), wait_s))


def rerun_run(installation: Installation, call: Call) -> Any:
    from bgproc.services.adhoc import rerun

    again = rerun(installation.registry, installation.runs, installation.app,
                  run_id(call.path("id")))  # fmt: skip
    return run_details(installation, again)


def run_request(installation: Installation, call: Call) -> Any:
    from bgproc.services.adhoc import run_request as run_now

    number = run_now(installation.requests, installation.registry, installation.runs,
                     installation.app, request_id(call.path("id")))  # fmt: skip
    return run_details(installation, number)


def get_processes(installation: Installation, call: Call) -> Any:
    return [documents.process_document(spec) for spec in installation.registry.all()]


def get_groups(installation: Installation, call: Call) -> Any:
    return [view.as_json() for view in installation.groups.list()]


def get_group(installation: Installation, call: Call) -> Any:
    return installation.groups.get(call.path("ident")).as_json()


def get_calendars(installation: Installation, call: Call) -> Any:
    return [view.as_json() for view in installation.calendars.list()]


def get_calendar(installation: Installation, call: Call) -> Any:
    return installation.calendars.get(call.path("ident")).as_json()


CALENDAR_FIELDS = {"name", "tz", "dates", "yearly", "windows"}


def calendar_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A calendar's fields from a JSON body: lists of text, as ``calendar create`` takes."""
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key not in CALENDAR_FIELDS:
            raise InvalidInput(key, "is not a field of a calendar")
        if key in ("dates", "yearly", "windows"):
            value = _names(value, {"dates": "date", "windows": "window"}.get(key, key))
        fields[key] = value
    return fields


def _names(value: Any, label: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(label, "must be a list of text")
    return value


def create_calendar(installation: Installation, call: Call) -> Any:
    return installation.calendars.create(calendar_fields(call.body)).as_json()


def update_calendar(installation: Installation, call: Call) -> Any:
    fields = calendar_fields(call.body)
    return installation.calendars.update(call.path("ident"), fields).as_json()


def delete_calendar(installation: Installation, call: Call) -> Any:
    view = installation.calendars.delete(call.path("ident"))
    return {"id": view.id, "name": view.name, "deleted": True}


def get_workers(installation: Installation, call: Call) -> Any:
    running = installation.runs.list(status=RunStatus.processing, limit=RUNNING_SHOWN)
    return documents.workers_document(installation.control.workers(), running)


def get_queues(installation: Installation, call: Call) -> Any:
    control = installation.control
    return documents.queues_document(control.queues(installation.queues), control.unacked())


def get_beats(installation: Installation, call: Call) -> Any:
    return documents.beats_document(installation.control.beats(), datetime.now(UTC))


def get_health(installation: Installation, call: Call) -> Any:
    from bgproc.services.health import check

    checks = check(installation.control, installation.engine, datetime.now(UTC))
    document = documents.health_document(checks)
    return JSON(document, 200 if document["healthy"] else 503)


def get_stats(installation: Installation, call: Call) -> Any:
    since = since_filter(call.query("since"), zone_of(installation), datetime.now(UTC))
    rows = installation.runs.stats(process=process_filter(call.query("process")), since=since)
    return [row.as_json() for row in rows]


def get_stats_hourly(installation: Installation, call: Call) -> Any:
    start, until = hourly_window(call.query("since"), zone_of(installation), datetime.now(UTC))
    only = process_filter(call.query("process"))
    return hourly_stats(installation.runs, start, until, only, durations_of=only).as_json()


REQUEST_BODY = (
    "a request's fields as `request create` takes them (underscores for dashes): process "
    "or group, params (an object), name, prevent_concurrent, replace_running, misfire, "
    "catch_up_max, calendars (a list of names; [] clears them), on_excluded (skip or "
    "next-business-day), the retry fields (retries, retry_backoff and retry_max as 30s/5m/1h "
    "or seconds, retry_jitter true or false), the deadlines (start_deadline and max_runtime "
    "as 5m or seconds, or none; kill_overdue true or false), alert_webhook and alert_email "
    "(or none) and the timing fields: "
    + ", ".join(TIMING_KEYS)
)
CALENDAR_BODY = (
    "a calendar's fields: name, tz, and lists dates (YYYY-MM-DD), yearly (MM-DD) and windows "
    "(HH:MM-HH:MM); on update a list given replaces the old one"
)
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/requests", get_requests, "request list --json",
             ("status", "process", "after", "limit")),
    Endpoint("POST", "/requests", create_request, "request create --json", acts=True,
             body=REQUEST_BODY + "; schedule (default true)", status=201),
    Endpoint("GET", "/requests/{id}", get_request, "request show ID --json", ("next",)),
    Endpoint("PATCH", "/requests/{id}", update_request, "request update ID --json",
             acts=True, body=REQUEST_BODY),
    Endpoint("POST", "/requests/{id}/schedule", lifecycle("schedule"),
             "request schedule ID --json", acts=True),
    Endpoint("POST", "/requests/{id}/unschedule", lifecycle("unschedule"),
             "request unschedule ID --json", acts=True),
    Endpoint("POST", "/requests/{id}/reschedule", lifecycle("reschedule"),
             "request reschedule ID --json", acts=True),
    Endpoint("DELETE", "/requests/{id}", delete_request, "request delete ID", acts=True),
    Endpoint("POST", "/requests/{id}/run", run_request, "request run ID --json: the request "
             "once now, its plan unchanged", acts=True, status=201),
    Endpoint("GET", "/preview", get_preview, "preview --json (the timing fields as query "
             "words; calendar repeatable, on_excluded)", (*TIMING_KEYS, "calendar", "on_excluded",
             "count")),
    Endpoint("GET", "/runs", get_runs, "monitor list --json (a Link header names the next "
             "page)", RUN_FILTERS),
    Endpoint("GET", "/runs/{id}", get_run, "monitor show RUN_ID --json"),
    Endpoint("GET", "/runs/{id}/log", get_log, "monitor log RUN_ID: the text from an offset "
             "(in characters) on, and the next offset", ("offset",)),
    Endpoint("POST", "/runs/{id}/kill", kill_run, "monitor kill RUN_ID (waits up to `wait` s)",
             ("wait",), acts=True),
    Endpoint("POST", "/runs/{id}/rerun", rerun_run, "monitor rerun RUN_ID --json: a new run, "
             "the same process and parameters", acts=True, status=201),
    Endpoint("GET", "/processes", get_processes, "processes --json"),
    Endpoint("GET", "/groups", get_groups, "group list --json"),
    Endpoint("GET", "/groups/{ident}", get_group, "group show NAME|ID --json"),
    Endpoint("GET", "/calendars", get_calendars, "calendar list --json"),
    Endpoint("GET", "/calendars/{ident}", get_calendar, "calendar show NAME|ID --json"),
    Endpoint("POST", "/calendars", create_calendar, "calendar create --json", acts=True,
             body=CALENDAR_BODY, status=201),
    Endpoint("PATCH", "/calendars/{ident}", update_calendar, "calendar update NAME|ID --json "
             "(re-plans the requests that follow it)", acts=True, body=CALENDAR_BODY),
    Endpoint("DELETE", "/calendars/{ident}", delete_calendar, "calendar delete NAME|ID",
             acts=True),
    Endpoint("GET", "/workers", get_workers, "monitor workers --json"),
    Endpoint("GET", "/queues", get_queues, "monitor queues --json"),
    Endpoint("GET", "/beats", get_beats, "monitor beats --json"),
    Endpoint("GET", "/health", get_health, "health --json (503 when not healthy)"),
    Endpoint("GET", "/stats", get_stats, "monitor stats --json", ("process", "since")),
    Endpoint("GET", "/stats/hourly", get_stats_hourly, "monitor stats --hourly --json: runs "
             "per UTC hour by status since `since` (24h by default, at most 31 days); with "
             "`process`, its p50 and max duration per hour", ("process", "since")),
)  # fmt: skip


# -- the wrapper -------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object a POST or PATCH carries (nothing: an empty one)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body", "is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    return body


def failure_response(error: Exception, installation: Installation) -> JSON:
    """The JSON error of ``error``; a bug is logged and answered 500 in one line."""
    failure = failure_of(error, installation.settings)
    if failure is None:
        logger.exception("bgproc web: unexpected error")
        failure = Failure(500, f"unexpected {type(error).__name__}: please report it")
    return JSON(failure.as_json(), failure.status)


def endpoint(spec: Endpoint) -> Callable[[Request], Any]:
    """The ASGI endpoint of ``spec``: access, body, the handler in a thread, errors."""

    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            web.access.check_host(request)
            if spec.acts:
                web.access.check_act(request)
            else:
                web.access.check_read(request)
            body = await json_body(request) if spec.body else {}
            data = await run_in_threadpool(spec.handler, web.installation, Call(request, body))
        except Exception as error:
            return failure_response(error, web.installation)
        return data if isinstance(data, Response) else JSON(data, spec.status)

    run.__name__ = spec.handler.__name__
    return run

