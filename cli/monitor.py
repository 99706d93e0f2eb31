"""``bgproc monitor …``: Etendo's Process Monitor — every run, its log, statistics, clean-up.

Parsing and printing only: the queries are :class:`bgproc.store.runs.RunStore`'s. Every run
shown goes through the registry's mask first, so a secret parameter never reaches output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from bgproc.installation import Installation
from bgproc.services.documents import (
    human_duration,
    overdue_words,
    progress_text,
    retry_words,
    run_document,
)
from bgproc.services.hourly import HourlyStats, hourly_stats, hourly_window
from bgproc.services.runfilters import (
    MAX_ID,
    MAX_LIMIT,
    process_filter,
    run_filters,
    since_filter,
)
from bgproc.statuses import RunStatus
from bgproc.timing.inputs import parse_duration
from cli.ctrlc import CtrlC
from cli.lazy import LazyGroup
from cli.options import WholeNumber, json_option, settings_zone
from cli.output import local_time, print_fields, print_json, print_table, say, tell

if TYPE_CHECKING:
    from bgproc.services.control import Whereabouts
    from bgproc.store.runview import RunView
    from bgproc.store.stats import ProcessStats

FOLLOW_POLL_S = 0.5  # how often ``log --follow`` looks for new text
LOG_TAIL_LINES = 20  # ``show`` prints the end of the log; ``log`` prints all of it
ERROR_CHARS = 60  # the error column of a listing: its first line, cut
RUN_ID = WholeNumber("run id", MAX_ID)


def short_time(instant: datetime | None, zone: ZoneInfo) -> str:
    """A table cell: the local time to the second, with its offset (DST folds stay clear)."""
    return local_time(instant.replace(microsecond=0), zone) if instant is not None else ""


def _first_line(text: str | None) -> str:
    line = (text or "").strip().split("\n", 1)[0]
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def _params(params: dict[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "-"


@click.group(
    cls=LazyGroup,
    lazy={name: f"cli.live:{name}" for name in ("workers", "beats", "queues", "kill", "watch")}
    | {"rerun": "cli.rerun:rerun"},
)
def monitor() -> None:
    """The Process Monitor: every run, its log, statistics and clean-up."""


@monitor.command("list")
@click.option("--process", default=None, help="Only runs of this process.")
@click.option("--group", default=None, metavar="NAME", help="Only the runs of this group.")
@click.option(
    "--status",
    default=None,
    metavar="S",
    help="queued | processing | success | error | skipped | killed | misfired | lost | expired.",
)
@click.option(
    "--request", "request_id", default=None, metavar="ID", help="Only runs of this request."
)
@click.option(
    "--since",
    default=None,
    metavar="DT",
    help="Runs from this time on: a duration back from now like 2h or 7d, or an ISO "
    "date-time (in BGPROC_TIMEZONE without an offset).",
)
@click.option("--until", default=None, metavar="DT", help="Runs before this time (as --since).")
@click.option("--limit", default="50", metavar="N", help=f"At most N runs (1..{MAX_LIMIT}).")
@click.option(
    "--before",
    default=None,
    metavar="ID",
    help="Runs with ids below ID: the next page after a listing's last id.",
)
@json_option
@click.pass_obj
def list_runs(
    installation: Installation,
    process: str | None,
    group: str | None,
    status: str | None,
    request_id: str | None,
    since: str | None,
    until: str | None,
    limit: str,
    before: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    zone = settings_zone(installation)
    query = run_filters(
        zone=zone, now=datetime.now(UTC), process=process, group=group, status=status,
        request=request_id, since=since, until=until, limit=limit, before=before,
    )  # fmt: skip
    count = query["limit"]
    views = installation.runs.list(**query)
    registry = installation.registry
    views = [view.masked(registry) for view in views]
    if as_json:
        print_json([view.as_json(full=False) for view in views])
        return
    print_table(
        "Runs",
        ["id", "process", "status", f"when ({zone.key})", "duration", "request", "worker", "error"],
        (
            [
                view.id,
                view.process,
                view.status.value + (" (overdue)" if view.overdue else ""),
                short_time(view.when, zone),
                human_duration(view.duration_ms),
                view.request_id,
                view.worker,
                _first_line(view.error),
            ]
            for view in views
        ),
    )
    if len(views) == count:
        tell(f"more: --before {views[-1].id}")


def _show_table(view: RunView, zone: ZoneInfo, whereabouts: Whereabouts | None) -> None:
    log_lines = (view.log or "").splitlines()
    tail = log_lines[-LOG_TAIL_LINES:]
    if len(log_lines) > len(tail):
        tail.insert(
            0, f"… last {len(tail)} of {len(log_lines)} lines: bgproc monitor log {view.id}"
        )
    print_fields(
        f"Run {view.id}",
        [
            ("process", view.process),
            ("status", view.status.value + (" (overdue)" if view.overdue else "")),
            ("channel", view.channel.value),
            ("request", view.request_id),
            ("group run", view.group_run_id),
            ("params", _params(view.params)),
            ("scheduled", local_time(view.scheduled_at, zone)),
            ("queued", local_time(view.queued_at, zone)),
            ("started", local_time(view.started_at, zone)),
            ("ended", local_time(view.ended_at, zone)),
            ("duration", human_duration(view.duration_ms)),
            ("worker", view.worker),
            ("attempt", view.attempt),
            ("progress", progress_text(view.progress) if view.progress else None),
            ("retry", retry_words(view, lambda instant: local_time(instant, zone))),
            ("start by", local_time(view.start_by, zone) if view.start_by else None),
            ("overdue", overdue_words(view, lambda instant: local_time(instant, zone))),
            ("task id", view.task_id),
            ("message", whereabouts.describe() if whereabouts else None),
            ("error", view.error),
            ("result", view.result_json),
            ("traceback", view.traceback),
            ("log", "\n".join(tail)),
        ],
    )


@monitor.command()
@click.argument("run_id", type=RUN_ID, metavar="RUN_ID")
@json_option
@click.pass_obj
def show(installation: Installation, run_id: int, as_json: bool) -> None:
    """Show every field of one run (with --json, its whole log too)."""
    runs, registry = installation.runs, installation.registry
    view = runs.get(run_id).masked(registry)
    steps = [step.masked(registry) for step in runs.steps(view.id)]
    whereabouts = None
    if view.status is RunStatus.queued and view.task_id:
        whereabouts = installation.redelivery.whereabouts(view.task_id, installation.queues)
    if as_json:
        print_json(run_document(view, steps, whereabouts))
        return
    zone = settings_zone(installation)
    _show_table(view, zone, whereabouts)
    if steps:
        print_table(
            "Steps",
            ["run", "process", "status", f"started ({zone.key})", "duration", "worker", "error"],
            (
                [
                    step.id,
                    step.process,
                    step.status.value,
                    short_time(step.started_at, zone),
                    human_duration(step.duration_ms),
                    step.worker,
                    _first_line(step.error),
                ]
                for step in steps
            ),
        )


@monitor.command()
@click.argument("run_id", type=RUN_ID, metavar="RUN_ID")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.pass_obj
def log(installation: Installation, run_id: int, follow: bool) -> None:
    """Print the Process Log of a run."""
    runs, printed = installation.runs, ""
    with CtrlC() as ctrl_c:
        try:
            chunk = runs.read_log(run_id)
            printed = chunk.text
            say(chunk.text, newline=False)
            while follow and not chunk.finished and not ctrl_c.wait(FOLLOW_POLL_S):
                chunk = runs.read_log(run_id, chunk.end)
                if chunk.restarted:
                    tell("[the log was rewritten; printing it again]")
                if chunk.text:
                    say(chunk.text, newline=False)
                    printed = chunk.text
        finally:
            if printed and not printed.endswith("\n"):
                say()


def _stats_table(rows: list[ProcessStats], zone: ZoneInfo) -> None:
    shown = [s.value for s in RunStatus if any(row.counts[s.value] for row in rows)]
    print_table(
        "Runs per process",
        [
            "process",
            "runs",
            *shown,
            "success rate",
            "p50",
            "p95",
            "max",
            f"last run ({zone.key})",
        ],
        (
            [
                row.process,
                row.total,
                *(row.counts[status] for status in shown),
                "" if row.success_rate is None else f"{row.success_rate:.1%}",
                human_duration(row.p50_ms),
                human_duration(row.p95_ms),
                human_duration(row.max_ms),
                short_time(row.last_run_at, zone),
            ]
            for row in rows
        ),
    )


def _hourly_table(hourly: HourlyStats, zone: ZoneInfo) -> None:
    shown = [s.value for s in RunStatus if any(hour.counts[s.value] for hour in hourly.hours)]
    timed = dict.fromkeys(("p50", "max")) if hourly.durations_of else {}
    durations = hourly.durations or [None] * len(hourly.hours)
    print_table(
        f"Runs per hour of {hourly.process or 'every process'}",
        [f"hour ({zone.key})", "runs", *shown, *timed],
        (
            [
                hour.hour.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                hour.total,
                *(hour.counts[status] for status in shown),
                *((human_duration(spread.p50_ms), human_duration(spread.max_ms)) if spread else ()),
            ]
            for hour, spread in zip(hourly.hours, durations, strict=True)
        ),
    )


@monitor.command()
@click.option("--process", default=None, help="Only this process.")
@click.option(
    "--since",
    default=None,
    metavar="DT",
    help="Only runs from this time on (as in monitor list); with --hourly, 24h by default.",
)
@click.option(
    "--hourly",
    is_flag=True,
    help="Per hour instead: runs by status (with --process, its p50 and max duration too); "
    "at most 31 days.",
)
@json_option
@click.pass_obj
def stats(
    installation: Installation,
    process: str | None,
    since: str | None,
    hourly: bool,
    as_json: bool,
) -> None:
    """Per process: runs by status, success rate, p50/p95/max duration, last run.

    The success rate is of the runs that ran (success, error, killed, lost): misfired,
    skipped and expired fires never ran, and are counted apart.
    """
    zone = settings_zone(installation)
    now = datetime.now(UTC)
    if hourly:
        start, until = hourly_window(since, zone, now)
        only = process_filter(process)
        figures = hourly_stats(installation.runs, start, until, only, durations_of=only)
        print_json(figures.as_json()) if as_json else _hourly_table(figures, zone)
        return
    start = since_filter(since, zone, now)
    rows = installation.runs.stats(process=process_filter(process), since=start)
    if as_json:
        print_json([row.as_json() for row in rows])
    else:
        _stats_table(rows, zone)


@monitor.command()
@click.option(
    "--older-than",
    default=None,
    metavar="DURATION",
    help="Delete every finished run older than this (e.g. 7d, 12h, 30m) and complete "
    "requests untouched as long. Default, as Etendo: successes after 15 days, other "
    "finished runs after 30, complete requests after 15.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@json_option
@click.pass_obj
def prune(installation: Installation, older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete old runs and complete requests; queued and processing runs are never touched."""
    age = parse_duration(older_than, "older-than") if older_than is not None else None
    pruned = installation.runs.prune(now=datetime.now(UTC), older_than=age, dry_run=dry_run)
    if as_json:
        print_json(pruned.as_json())
        return
    runs = _counted(sum(pruned.runs.values()), "finished run")
    if pruned.runs:
        runs += " (" + ", ".join(f"{status} {n}" for status, n in pruned.runs.items()) + ")"
    line = (
        f"{'would prune' if dry_run else 'pruned'} {runs}, "
        f"{_counted(pruned.child_runs, 'group step run')} with them, "
        f"{_counted(pruned.requests, 'complete request')}"
    )
    say(line + (" (dry run: nothing deleted)" if dry_run else ""))


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
