"""``bgproc monitor workers|beats|queues|kill|watch``: what is going on right now.

Live workers and queue depths come from Redis (:class:`bgproc.services.control.Control`); what
each worker runs comes from the monitor database. Parsing and printing only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from bgproc.installation import Installation
from bgproc.services.documents import (
    beats_document,
    human_duration,
    progress_text,
    queues_document,
    workers_document,
)
from bgproc.statuses import RunStatus
from bgproc.timing.inputs import parse_int
from cli.ctrlc import CtrlC
from cli.monitor import RUN_ID, short_time
from cli.options import json_option, settings_zone
from cli.output import cells, console, display, new_table, print_json, say, tell

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

    from bgproc.services.control import BeatInfo, QueueDepth, WorkerInfo
    from bgproc.store.runview import RunView

RUNNING_SHOWN = 1000  # ``workers`` reads at most this many running runs
WATCH_RUNS = 15


def _running(installation: Installation) -> list[RunView]:
    return installation.runs.list(status=RunStatus.processing, limit=RUNNING_SHOWN)


def _workers_table(workers: list[WorkerInfo], running: list[RunView], zone: ZoneInfo) -> Table:
    columns = ("worker", "host", "pid", "pool", "queues", "up since", "running now")
    table = new_table("Workers", columns)
    for worker in workers:
        now_running = [run for run in running if run.worker == worker.name]
        table.add_row(*cells(
            worker.name,
            worker.host,
            str(worker.pid),
            f"{worker.pool} ×{worker.concurrency}",
            ",".join(worker.queues),
            short_time(worker.started_at, zone),
            "\n".join(f"run {run.id} {run.process}" for run in now_running) or "idle",
        ))
    return table


def _beats_table(beats: list[BeatInfo], now: datetime, zone: ZoneInfo) -> Table:
    columns = ("beat", "role", "last tick", "up since", "cannot reach", "last error")
    table = new_table("Beats", columns)
    for beat in beats:
        age_s = (now - beat.ticked_at).total_seconds()
        role = "holds the lock" if beat.holds_lock else "standby"
        table.add_row(*cells(
            beat.name,
            f"STALE (was: {role})" if beat.stale(now) else role,
            f"{age_s:.1f} s ago",
            short_time(beat.started_at, zone),
            ", ".join(beat.down),
            beat.last_error,
        ))
    return table


def _queues_table(depths: list[QueueDepth]) -> Table:
    table = new_table("Queues", ("queue", "waiting", "consumed by"))
    for depth in depths:
        table.add_row(*cells(depth.name, depth.waiting, ", ".join(depth.consumers) or "no worker!"))
    return table


@click.command()
@json_option
@click.pass_obj
def workers(installation: Installation, as_json: bool) -> None:
    """Live workers (announced in the last 15 s), their queues, and the runs each runs now."""
    found = installation.control.workers()
    running = _running(installation)
    if as_json:
        print_json(workers_document(found, running))
        return
    if not found:
        display("[dim]Workers: none alive (start one with bgproc worker)[/dim]")
    else:
        display(_workers_table(found, running, settings_zone(installation)))
    _warn_unless_scheduling(installation, installation.control.beats(), datetime.now(UTC))


def _warn_unless_scheduling(
    installation: Installation, found: list[BeatInfo], now: datetime
) -> None:
    """A red line under the table when no beat holds the lock and ticks."""
    from bgproc.services.health import scheduler_check

    scheduler = scheduler_check(found, installation.control.lock_held(), now)
    if not scheduler.ok:
        display(f"[bold red]Scheduler: {scheduler.detail}[/bold red]")


@click.command()
@json_option
@click.pass_obj
def beats(installation: Installation, as_json: bool) -> None:
    """Every beat: lock holder or standby, last tick, stale (silent over 5 s), last outage.

    A beat stays listed 5 minutes after its last tick, marked STALE: a scheduler that
    died or hangs shows here instead of vanishing.
    """
    found, now = installation.control.beats(), datetime.now(UTC)
    if as_json:
        print_json(beats_document(found, now))
        return
    if not found:
        display("[dim]Beats: none running (start one with bgproc beat or bgproc up)[/dim]")
        return
    display(_beats_table(found, now, settings_zone(installation)))
    _warn_unless_scheduling(installation, found, now)


@click.command()
@json_option
@click.pass_obj
def queues(installation: Installation, as_json: bool) -> None:
    """Broker queues: messages waiting in each, and the live workers that consume it."""
    control = installation.control
    depths = control.queues(installation.queues)
    if as_json:
        print_json(queues_document(depths, control.unacked()))
        return
    display(_queues_table(depths))
    say(f"taken by workers, not yet acknowledged: {control.unacked()}")


@click.command()
@click.argument("run_id", type=RUN_ID, metavar="RUN_ID")
@click.option(
    "--timeout",
    default="30",
    metavar="SECONDS",
    help="How long to wait for the run to stop (0: ask and return at once).",
)
@click.pass_obj
def kill(installation: Installation, run_id: int, timeout: str) -> None:
    """Stop a run of a killable process; it ends as `killed`.

    A queued run is killed at once, and so is a retry waiting for its backoff (killing
    the failed run it retries stops it too). A running one is asked to stop: its process sees
    ctx.should_stop() within about half a second and returns. Exit 0 once it is killed,
    1 if it still runs after --timeout, 4 if the run has ended or its process is not killable.
    """
    wait_s = parse_int(timeout, "timeout", 0, 86400)
    outcome = installation.killer.kill(run_id, wait_s)
    if outcome.group:
        say(f"group run {run_id} killed")
    elif outcome.killed:
        of = "" if outcome.run.id == run_id else f" (the retry of run {run_id}, not yet due)"
        say(f"run {outcome.run.id} killed{of}")
    elif not outcome.still_running:
        say(f"run {run_id} ended {outcome.run.status.value} before the kill took effect")
    else:
        tell(f"run {run_id}: kill asked; still running after {wait_s} s")
        raise click.exceptions.Exit(1)


def _runs_table(views: list[RunView], zone: ZoneInfo) -> Table:
    columns = ("id", "process", "status", "when", "duration", "worker", "progress")
    table = new_table("Latest runs", columns)
    for view in views:
        table.add_row(*cells(
            str(view.id),
            view.process,
            view.status.value + (" (overdue)" if view.overdue else ""),
            short_time(view.when, zone),
            human_duration(view.duration_ms),
            view.worker or "",
            progress_text(view.progress) if view.progress else "",
        ))
    return table


@click.command()
@click.option("--interval", default="1", metavar="SECONDS", help="Refresh every SECONDS (1..60).")
@click.option("--count", default=None, metavar="N", help="Refresh N times, then exit.")
@click.pass_obj
def watch(installation: Installation, interval: str, count: str | None) -> None:
    """A live view: workers, queues and the latest runs, refreshed until Ctrl-C.

    Into a pipe or a file, it prints a plain snapshot per refresh instead.
    """
    from rich.console import Group
    from rich.live import Live

    every_s = parse_int(interval, "interval", 1, 60)
    rounds = parse_int(count, "count", 1, 10**6) if count is not None else None
    zone = settings_zone(installation)
    names = installation.queues

    def view() -> Group:
        control = installation.control
        return Group(
            _beats_table(control.beats(), datetime.now(UTC), zone),
            _workers_table(control.workers(), _running(installation), zone),
            _queues_table(control.queues(names)),
            _runs_table(installation.runs.list(limit=WATCH_RUNS), zone),
        )

    # Live redraws a terminal; elsewhere it would print once, at the end (or never, if killed).
    live = Live(console=console(), auto_refresh=False) if console().is_terminal else None
    done = 0
    with CtrlC() as ctrl_c:
        try:
            if live is not None:
                live.start()
            while (rounds is None or done < rounds) and not (done and ctrl_c.wait(every_s)):
                done += 1
                if live is not None:
                    live.update(view(), refresh=True)
                else:
                    say(f"-- {short_time(datetime.now(UTC), zone)}")
                    display(view())
        finally:
            if live is not None:
                live.stop()

