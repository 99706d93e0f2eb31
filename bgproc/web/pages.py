"""The server-rendered pages: Process Requests, Process Monitor, workers, processes, groups.

Each page reads what its API twin reads (:mod:`bgproc.web.api`'s helpers) and renders it
with Jinja2, which escapes every value (logs and parameters are untrusted text). Actions
are plain HTML forms (a CSRF field each) answered by a redirect, so the pages work from
the keyboard and without scripts; the scripts only add the live parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from bgproc.errors import InvalidInput
from bgproc.services.documents import human_duration, progress_text
from bgproc.statuses import GROUP_LABEL_PREFIX, RequestStatus, RunStatus
from bgproc.timing.fields import FIELDS_OF
from bgproc.web import forms
from bgproc.web.api import (
    RUN_FILTERS,
    RUNNING_SHOWN,
    Web,
    list_runs,
    request_details,
    request_id,
    run_details,
    run_id,
    zone_of,
)
from bgproc.web.auth import CSRF_FIELD, SESSION_COOKIE, TOKEN_HOLDER, Refused, Who
from bgproc.web.errors import Failure, failure_of

logger = logging.getLogger("bgproc.web")

REQUESTS_PER_PAGE = 50
REQUEST_RUNS_SHOWN = 20
NEXT_FIRES_SHOWN = 10
MAX_FORM_BYTES = 1_000_000
PageHandler = Callable[[Web, Request, Mapping[str, Any]], Response]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bgproc.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["duration"] = human_duration
    return env


TEMPLATES = Jinja2Templates(env=_environment())


def render(
    web: Web, request: Request, template: str, status: int = 200, **context: Any
) -> Response:
    """A page, with what every page shows: who is logged in, the CSRF token for its forms."""
    who = web.access.who(request)
    zone = web.installation.settings.timezone

    def when(text: str | datetime | None) -> str:
        """An instant in the installation's zone, to the second, with its offset."""
        if not text:
            return ""
        instant = datetime.fromisoformat(text) if isinstance(text, str) else text
        return instant.astimezone(zone_of(web.installation)).replace(microsecond=0).isoformat(" ")

    context.update(
        who=who,
        operator=who is not None and who.acts,
        viewer=who is not None and not who.acts,
        csrf=web.access.csrf_for(request),
        csrf_field=CSRF_FIELD,
        zone=zone,
        when=when,
        path=request.url.path,
    )
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- Process Requests --------------------------------------------------------------------


def requests_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    words = request.query_params
    status, process = words.get("status") or None, words.get("process") or None
    after = words.get("after") or None
    views = web.installation.requests.list(
        status=status, process=process, after=after, limit=REQUESTS_PER_PAGE + 1
    )  # one more than shown: whether there is a next page
    shown, more = views[:REQUESTS_PER_PAGE], len(views) > REQUESTS_PER_PAGE
    query = {k: v for k, v in (("status", status), ("process", process)) if v}
    return render(
        web, request, "requests.html", views=shown, status_filter=status or "",
        process=process or "", statuses=[s.value for s in RequestStatus],
        first_url="/requests" + (f"?{urlencode(query)}" if query else "") if after else None,
        next_url="/requests?" + urlencode({**query, "after": shown[-1].id}) if more else None,
    )  # fmt: skip


def _form_choices(web: Web) -> dict[str, Any]:
    installation = web.installation
    return {
        "processes": installation.registry.all(),
        "groups": [view.name for view in installation.groups.list()],
        "weekdays": forms.WEEKDAYS,
        "plan_fields": {kind.value: sorted(keys) for kind, keys in FIELDS_OF.items()},
    }


def request_form(
    web: Web,
    request: Request,
    values: Mapping[str, Any],
    days: list[str],
    editing: int | None = None,
    error: InvalidInput | None = None,
) -> Response:
    errors = {forms.input_of(error.field): error.why} if error is not None else {}
    return render(
        web, request, "request_form.html", status=400 if error else 200, values=values,
        days=days, editing=editing, errors=errors, **_form_choices(web),
    )  # fmt: skip


def new_request_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    defaults = {"timing": "immediate", "tz": web.installation.settings.timezone,
                "misfire": "run-once", "schedule": "on",
                "target": request.query_params.get("process", "")}  # fmt: skip
    return request_form(web, request, defaults, [])


def create_request(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    days = list(form.get("days", []))
    try:
        fields = forms.fields_of_form(form, days)
        view = web.installation.requests.create(fields, schedule=form.get("schedule") == "on")
    except InvalidInput as error:
        return request_form(web, request, form, days, error=error)
    return redirect(f"/requests/{view.id}")


def request_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    number = request_id(request.path_params["id"])
    return _request_page(web, request, number)


def _request_page(
    web: Web, request: Request, number: int, failure: Failure | None = None
) -> Response:
    installation = web.installation
    document = request_details(installation, number, NEXT_FIRES_SHOWN)
    runs = [
        view.masked(installation.registry)
        for view in installation.runs.list(request_id=number, limit=REQUEST_RUNS_SHOWN)
    ]
    return render(
        web, request, "request.html", status=failure.status if failure else 200,
        request_doc=document, runs=runs, failure=failure,
    )  # fmt: skip


def edit_request_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    number = request_id(request.path_params["id"])
    shown = forms.form_of_request(request_details(web.installation, number, 0))
    return request_form(web, request, shown["values"], shown["days"], editing=number)


def update_request(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    number = request_id(request.path_params["id"])
    service = web.installation.requests
    days = list(form.get("days", []))
    try:
        fields = forms.fields_of_form(form, days)
        stored = service.get(number, reveal=True)
        if stored.process is not None and fields.get("process") == stored.process:
            secret = set(web.installation.registry.get(stored.process).secret_params)
            forms.keep_secrets(fields["params"], stored.params, secret)
        view = service.update(number, fields)
    except InvalidInput as error:
        return request_form(web, request, form, days, editing=number, error=error)
    return redirect(f"/requests/{view.id}")


def request_action(verb: str) -> PageHandler:
    """Etendo's buttons: Schedule, Unschedule, Reschedule, Delete."""

    def handler(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
        number = request_id(request.path_params["id"])
        try:
            getattr(web.installation.requests, verb)(number)
        except Exception as error:
            failure = failure_of(error, web.installation.settings)
            if failure is None or failure.status not in (400, 409):
                raise
            return _request_page(web, request, number, failure)
        return redirect("/requests" if verb == "delete" else f"/requests/{number}")

    return handler


# -- Process Monitor ---------------------------------------------------------------------


def monitor_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    words = {name: request.query_params.get(name) or None for name in RUN_FILTERS}
    words["limit"] = words["limit"] or "50"
    views = list_runs(web.installation, words)
    more = None
    if len(views) == int(words["limit"]):
        kept = {k: v for k, v in words.items() if v and k != "before"}
        more = "/monitor?" + urlencode({**kept, "before": views[-1].id})
    template = "runs_table.html" if request.query_params.get("partial") else "monitor.html"
    return render(
        web, request, template, views=views, words=words, more=more,
        statuses=[s.value for s in RunStatus],
    )  # fmt: skip


def run_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    number = run_id(request.path_params["id"])
    return _run_page(web, request, number)


def _run_page(web: Web, request: Request, number: int, failure: Failure | None = None) -> Response:
    installation = web.installation
    document = run_details(installation, number)
    chunk = installation.runs.read_log(number)
    process = document["process"]
    killable = process.startswith(GROUP_LABEL_PREFIX)
    if not killable:
        try:
            killable = installation.registry.get(process).killable
        except Exception:  # a process no longer registered cannot be killed
            killable = False
    finished = RunStatus(document["status"]) not in (RunStatus.queued, RunStatus.processing)
    return render(
        web, request, "run.html", status=failure.status if failure else 200, run=document,
        log=chunk.text, log_end=chunk.end, finished=finished,
        killable=killable and not finished, failure=failure,
        rerunnable=finished and not process.startswith(GROUP_LABEL_PREFIX),
        progress_line=progress_text(chunk.progress) if chunk.progress else "",
    )  # fmt: skip


def kill_run(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    from bgproc.web.api import DEFAULT_KILL_WAIT_S

    number = run_id(request.path_params["id"])
    try:
        web.installation.killer.kill(number, DEFAULT_KILL_WAIT_S)
    except Exception as error:
        failure = failure_of(error, web.installation.settings)
        if failure is None or failure.status != 409:
            raise
        return _run_page(web, request, number, failure)
    return redirect(f"/runs/{number}")


def rerun_run(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    """The Rerun button: the new run's page, or this one saying why not."""
    from bgproc.services.adhoc import rerun

    installation, number = web.installation, run_id(request.path_params["id"])
    try:
        again = rerun(installation.registry, installation.runs, installation.app, number)
    except Exception as error:
        failure = failure_of(error, installation.settings)
        if failure is None or failure.status not in (400, 409):
            raise
        return _run_page(web, request, number, failure)
    return redirect(f"/runs/{again}")


def run_request(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    """The Run now button: the new run's page, or the request's saying why not."""
    from bgproc.services.adhoc import run_request as run_now

    installation, number = web.installation, request_id(request.path_params["id"])
    try:
        started = run_now(installation.requests, installation.registry, installation.runs,
                          installation.app, number)  # fmt: skip
    except Exception as error:
        failure = failure_of(error, installation.settings)
        if failure is None or failure.status not in (400, 409):
            raise
        return _request_page(web, request, number, failure)
    return redirect(f"/runs/{started}")


# -- workers, processes, groups ----------------------------------------------------------


def workers_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    from bgproc.services.health import scheduler_check

    installation = web.installation
    control, now = installation.control, datetime.now(UTC)
    beats = control.beats()
    lock_held = control.lock_held()
    running = installation.runs.list(status=RunStatus.processing, limit=RUNNING_SHOWN)
    return render(
        web, request, "workers.html", workers=control.workers(), running=running,
        beats=beats, now=now, queues=control.queues(installation.queues),
        unacked=control.unacked(), scheduler=scheduler_check(beats, lock_held, now),
    )  # fmt: skip


def processes_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    return render(web, request, "processes.html", specs=web.installation.registry.all())


def groups_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    return render(web, request, "groups.html", groups=web.installation.groups.list())


def group_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    view = web.installation.groups.get(request.path_params["ident"])
    return render(web, request, "group.html", group=view)


# -- logging in --------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path of this server (never ``//elsewhere``): no open redirect."""
    return target if target.startswith("/") and not target.startswith("//") else "/monitor"


def login_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    given = request.query_params.get("token", "")
    target = _safe_next(request.query_params.get("next", "/monitor"))
    if given and web.access.token_matches(given):  # the link `bgproc web` printed
        return _logged_in(web, request, TOKEN_HOLDER, target)
    wrong = "That is not the operator token." if given else ""
    return _login_form(web, request, target, wrong, 401 if given else 200)


def _login_form(
    web: Web, request: Request, target: str, wrong: str = "", status: int = 200, name: str = ""
) -> Response:
    return render(web, request, "login.html", status=status, next=target, wrong=wrong,
                  users=bool(web.access.users), name=name)  # fmt: skip


def login(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    """A user's name and password, or the token. A wrong one is answered in one message
    (never saying which part was wrong) and logged without what was typed: an unknown
    name is often a password typed in the wrong box."""
    access = web.access
    access.check_origin(request)
    target = _safe_next(str(form.get("next", "/monitor")))
    peer = request.client.host if request.client else "?"
    if "token" in form:
        if access.token_matches(str(form["token"])):
            return _logged_in(web, request, TOKEN_HOLDER, target)
        logger.warning("bgproc web: failed login with the operator token from %s", peer)
        return _login_form(web, request, target, "That is not the operator token.", 401)
    name = str(form.get("name", "")).strip()
    try:
        who = access.log_in(name, str(form.get("password", "")))
    except Refused as refused:
        said = refused.message[:1].upper() + refused.message[1:] + "."
        return _login_form(web, request, target, said, refused.status, name)
    if who is None:
        known = f"as {name!r}" if name in access.users else "with an unknown name"
        logger.warning("bgproc web: failed login %s from %s", known, peer)
        return _login_form(web, request, target, "Wrong user name or password.", 401, name)
    return _logged_in(web, request, who, target)


def _logged_in(web: Web, request: Request, who: Who, target: str) -> Response:
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE, web.access.session_of(who), httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return response


def logout(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    response = redirect("/monitor")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- the wrapper -------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, Any]:
    """A posted form: single values as text, ``days`` as the list of ticked boxes."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise InvalidInput("form", f"larger than {MAX_FORM_BYTES} bytes")
    posted = await request.form()
    values: dict[str, Any] = {k: v for k, v in posted.items() if isinstance(v, str)}
    values["days"] = [v for v in posted.getlist("days") if isinstance(v, str)]
    return values


def page(handler: PageHandler, acts: bool = False, public: bool = False) -> Callable[..., Any]:
    """The ASGI endpoint of a page: access, the form, the handler in a thread, errors."""

    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            web.access.check_host(request)
            form = await _form(request) if request.method == "POST" else {}
            if acts:
                web.access.check_act(request, str(form.get(CSRF_FIELD, "")))
            elif not public:
                web.access.check_read(request)
            return await run_in_threadpool(handler, web, request, form)
        except Refused as refused:
            if refused.status == 401:
                return redirect("/login?next=" + quote(request.url.path))
            return _error_page(web, request, Failure(refused.status, refused.message))
        except Exception as error:
            failure = failure_of(error, web.installation.settings)
            if failure is None:
                logger.exception("bgproc web: unexpected error")
                failure = Failure(500, f"unexpected {type(error).__name__}: please report it")
            return _error_page(web, request, failure)

    run.__name__ = handler.__name__
    return run


def _error_page(web: Web, request: Request, failure: Failure) -> Response:
    return render(web, request, "error.html", status=failure.status, failure=failure)
