"""``bgproc request …`` and ``bgproc preview``: Etendo's Process Request window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from bgproc.installation import Installation
from bgproc.services.documents import preview_document, request_document
from bgproc.services.preview import MAX_FIRES
from bgproc.services.preview import preview as preview_fires
from bgproc.settings import DEFAULT_REQUESTS_LISTED, MAX_REQUEST_ID, MAX_REQUESTS_LISTED
from bgproc.timing.alerts import ALERT_KEYS
from bgproc.timing.deadlines import DEADLINE_KEYS
from bgproc.timing.inputs import parse_int, parse_params
from bgproc.timing.plan import DEFAULT_CATCH_UP_MAX, MAX_CATCH_UP
from bgproc.timing.retry import RETRY_KEYS
from cli.lazy import LazyGroup
from cli.options import (
    WholeNumber,
    calendar_options,
    deadline_options,
    json_option,
    param_option,
    retry_options,
    timing_fields,
    timing_options,
)
from cli.output import local_time, print_fields, print_json, print_table, say, tell

if TYPE_CHECKING:
    from bgproc.services.requestview import RequestView

MAX_NEXT = MAX_FIRES
REQUEST_ID = WholeNumber("request id", MAX_REQUEST_ID)


def _request_options(command: Any) -> Any:
    """Options shared by create and update."""
    for decorator in reversed(
        [
            param_option,
            click.option("--name", default=None, help="A label for the request."),
            click.option(
                "--prevent-concurrent/--allow-concurrent",
                default=None,
                help="Skip a fire while a run of this request is still going.",
            ),
            click.option(
                "--replace-running/--no-replace-running",
                default=None,
                help="With --prevent-concurrent: a fire that finds this request's run still "
                "going kills it (a killable process) and starts, instead of being skipped "
                "(Kubernetes' concurrencyPolicy: Replace).",
            ),
            click.option(
                "--misfire",
                default=None,
                metavar="run-once|skip|catch-up",
                help="Fires missed while no beat ran (Quartz's misfires): one run for the "
                "latest (run-once, the default), none (skip), or one run each, oldest first "
                "(catch-up).",
            ),
            click.option(
                "--catch-up-max",
                default=None,
                metavar="N",
                help=f"With --misfire catch-up: run at most the newest N missed fires "
                f"(1..{MAX_CATCH_UP}, default {DEFAULT_CATCH_UP_MAX}); older ones are "
                "recorded misfired.",
            ),
            retry_options,
            deadline_options,
            click.option(
                "--alert-webhook",
                default=None,
                metavar="URL|none",
                help="POST a signed JSON alert here when a run of this request ends error, "
                "lost, misfired or expired (the ERP's alert rules; Airflow's "
                "on_failure_callback). E.g. --alert-webhook https://hooks.example.com/bgproc; "
                "none: no webhook (default: the process's, else BGPROC_ALERT_WEBHOOK).",
            ),
            click.option(
                "--alert-email",
                default=None,
                metavar="ADDRESS|none",
                help="Mail those alerts to this address (SMTP: BGPROC_SMTP_HOST …). "
                "E.g. --alert-email ops@example.com; none: no email.",
            ),
            calendar_options,
            click.option(
                "--no-calendar",
                is_flag=True,
                help="Follow no calendar any more (update; or give --calendar '').",
            ),
            timing_options,
            json_option,
        ]
    ):
        command = decorator(command)
    return command


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    fields = timing_fields(options)
    for key in ("name", "prevent_concurrent", "replace_running", "misfire", "catch_up_max",
                "process", "group", "on_excluded", *RETRY_KEYS, *DEADLINE_KEYS,
                *ALERT_KEYS):  # fmt: skip
        if options.get(key) is not None:
            fields[key] = options[key]
    if options.get("calendars") or options.get("no_calendar"):
        fields["calendars"] = list(options.get("calendars") or ())
    if options.get("params"):
        fields["params"] = parse_params(options["params"])
    return fields


def _next_count(value: str | None) -> int:
    return parse_int(value, "next", 0, MAX_NEXT) if value is not None else 5


def _show(view: RequestView, next_runs: list[datetime], as_json: bool) -> None:
    if as_json:
        print_json(request_document(view, next_runs))
        return
    zone = view.timing.zone
    print_fields(
        f"Request {view.id}",
        [
            ("process", view.process) if view.group is None else ("group", view.group),
            ("name", view.name),
            ("status", view.status.value),
            ("timing", view.plan.describe()),
            ("calendars", ", ".join(c.name for c in view.calendars) or "-"),
            ("on excluded", view.on_excluded.value),
            ("params", ", ".join(f"{k}={v}" for k, v in view.params.items()) or "-"),
            ("prevent concurrent", ("yes, replacing the running run" if view.replace_running
                                    else "yes") if view.prevent_concurrent else "no"),
            ("misfire", view.misfire.value
             + (f" (at most {view.catch_up_max})" if view.catch_up_max else "")),
            ("retries", _retries(view)),
            ("deadlines", _deadlines(view)),
            ("alerts", view.alerts.describe() if view.alerts else "the process's default"),
            ("created", local_time(view.created_at, zone)),
            ("updated", local_time(view.updated_at, zone)),
            ("next runs", "\n".join(local_time(f, zone) for f in next_runs) or "-"),
        ],
    )


def _deadlines(view: RequestView) -> str:
    words = view.deadlines.describe()
    if view.own_deadlines is None and words != "none":
        words += " (the process's default)"
    return words


def _retries(view: RequestView) -> str:
    if view.retry is None:
        return "none"
    return view.retry.describe() + ("" if view.retry_is_own else " (the process's default)")


@click.group(cls=LazyGroup, lazy={"run": "cli.rerun:run_request"})
def request() -> None:
    """Process requests: what runs, and when."""


@request.command()
@click.argument("process", required=False)
@click.option(
    "--group", default=None, metavar="NAME", help="Run this process group instead of PROCESS."
)
@_request_options
@click.option("--no-schedule", is_flag=True, help="Store the request unscheduled.")
@click.pass_obj
def create(
    installation: Installation,
    process: str | None,
    as_json: bool,
    no_schedule: bool,
    **options: Any,
) -> None:
    """Create a request for PROCESS (or --group NAME) and schedule it (unless --no-schedule).

    A group request takes no --param: each step of the group has its own.

    Prints the new request's id (with --json, the request).
    """
    view = installation.requests.create(
        _fields({**options, "process": process}), schedule=not no_schedule
    )
    if as_json:
        print_json(request_document(view, installation.requests.next_runs(view.id, 5)))
    else:
        say(view.id)


@request.command("list")
@click.option("--status", default=None, help="unscheduled | scheduled | complete.")
@click.option(
    "--process", default=None, help="Only requests of this process (group:NAME for a group)."
)
@click.option(
    "--limit",
    default=str(DEFAULT_REQUESTS_LISTED),
    metavar="N",
    help=f"At most N requests (1..{MAX_REQUESTS_LISTED}, default {DEFAULT_REQUESTS_LISTED}).",
)
@click.option(
    "--after", default=None, metavar="ID", help="Requests with ids above ID: the next page."
)
@json_option
@click.pass_obj
def list_requests(
    installation: Installation,
    status: str | None,
    process: str | None,
    limit: str,
    after: str | None,
    as_json: bool,
) -> None:
    """List process requests in id order, a page at a time (stderr tells the next page)."""
    views = installation.requests.list(status=status, process=process, after=after, limit=limit)
    if as_json:
        print_json([v.as_json() for v in views])
    else:
        print_table(
            "Process requests",
            ["id", "process", "name", "status", "timing"],
            ([v.id, v.label, v.name, v.status.value, v.plan.describe()] for v in views),
        )
    if views and len(views) == int(limit):
        tell(f"more: --after {views[-1].id}")


@request.command()
@click.argument("request_id", type=REQUEST_ID, metavar="ID")
@click.option(
    "--next",
    "next_count",
    default=None,
    metavar="N",
    help="How many next fire times to show (default 5).",
)
@json_option
@click.pass_obj
def show(
    installation: Installation, request_id: int, next_count: str | None, as_json: bool
) -> None:
    """Show one request, its timing in words and its next fire times."""
    count = _next_count(next_count)
    view = installation.requests.get(request_id)
    _show(view, installation.requests.next_runs(request_id, count), as_json)


@request.command()
@click.argument("request_id", type=REQUEST_ID, metavar="ID")
@click.option("--process", default=None, help="Run another process (its params start empty).")
@click.option("--group", default=None, metavar="NAME", help="Run a process group instead.")
@_request_options
@click.pass_obj
def update(installation: Installation, request_id: int, as_json: bool, **options: Any) -> None:
    """Change a request; a scheduled one is rescheduled in the same step.

    Giving --timing or --frequency replaces the whole plan; other options change one field.
    """
    view = installation.requests.update(request_id, _fields(options))
    _show(view, installation.requests.next_runs(view.id, 5), as_json)


def _lifecycle(name: str, doc: str) -> click.Command:
    @click.argument("request_id", type=REQUEST_ID, metavar="ID")
    @json_option
    @click.pass_obj
    def command(installation: Installation, request_id: int, as_json: bool) -> None:
        view = getattr(installation.requests, name)(request_id)
        if as_json:
            print_json(view.as_json())
        else:
            say(f"request {view.id}: {view.status.value}")

    command.__doc__ = doc
    return request.command(name)(command)


_lifecycle("schedule", "Schedule a request (Etendo's Schedule button).")
_lifecycle("reschedule", "Schedule a request afresh; the next fire is counted from now.")
_lifecycle("unschedule", "Unschedule a request: no run starts after this returns.")


@request.command()
@click.argument("request_id", type=REQUEST_ID, metavar="ID")
@click.pass_obj
def delete(installation: Installation, request_id: int) -> None:
    """Delete an unscheduled or complete request (a scheduled one is refused)."""
    installation.requests.delete(request_id)
    say(f"request {request_id}: deleted")


@click.command()
@timing_options
@calendar_options
@click.option("--count", default="10", metavar="N", help="How many fire times (default 10).")
@json_option
@click.pass_obj
def preview(installation: Installation, count: str, as_json: bool, **options: Any) -> None:
    """Show the next fire times of a timing (with --calendar, those its calendars leave or
    move); nothing is saved."""
    number = parse_int(count, "count", 1, MAX_NEXT)
    names = [name for name in options.pop("calendars") if name.strip()]
    on_excluded = options.pop("on_excluded")
    plan, fires = preview_fires(
        timing_fields(options), number, datetime.now(UTC), installation.settings.timezone,
        calendars=installation.calendars.values(names) if names else (),
        on_excluded=on_excluded,
    )  # fmt: skip
    if as_json:
        print_json(preview_document(plan, fires))
        return
    timing = plan.timing
    say(plan.describe())
    print_table(
        None,
        ["#", f"fire time ({timing.timezone})"],
        ([i, local_time(f, timing.zone)] for i, f in enumerate(fires, 1)),
    )
