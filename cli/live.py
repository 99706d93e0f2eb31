"""``bgproc monitor workers|beats|queues|kill|watch``: what is going on right now.

Live workers and queue depths come from Redis (:class:`bgproc.control.Control`); what
each worker runs comes from the monitor database. Parsing and printing only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from bgproc.control import BeatInfo, QueueDepth, WorkerInfo
from bgproc.errors import Conflict
from bgproc.health import scheduler_check
from bgproc.inputs import parse_int
from bgproc.installation import Installation
from bgproc.models import GROUP_LABEL_PREFIX, RunStatus
from bgproc.runs import RunView
from cli.monitor import RUN_ID, human_duration, short_time
from cli.options import json_option, settings_zone
from cli.output import console, print_json

RUNNING_SHOWN = 1000  # ``workers`` reads at most this many running runs
KILL_POLL_S = 0.2
WATCH_RUNS = 15


def _running(installation: Installation) -> list[RunView]:
    return installation.runs.list(status=RunStatus.processing, limit=RUNNING_SHOWN)


def _workers_table(workers: list[WorkerInfo], running: list[RunView], zone: ZoneInfo) -> Table:
    table = Table(title="Workers", title_justify="left", header_style="bold")
    for column in ("worker", "host", "pid", "pool", "queues", "up since", "running now"):
        table.add_column(column, overflow="fold")
    for worker in workers:
        now_running = [run for run in running if run.worker == worker.name]
        table.add_row(
            worker.name,
            worker.host,
            str(worker.pid),
            f"{worker.pool} ×{worker.concurrency}",
            ",".join(worker.queues),
            short_time(worker.started_at, zone),
            "\n".join(f"run {run.id} {run.process}" for run in now_running) or "idle",
        )
    return table


def _beats_table(beats: list[BeatInfo], now: datetime, zone: ZoneInfo) -> Table:
    table = Table(title="Beats", title_justify="left", header_style="bold")
    for column in ("beat", "role", "last tick", "up since", "cannot reach", "last error"):
        table.add_column(column, overflow="fold")
    for beat in beats:
        age_s = (now - beat.ticked_at).total_seconds()
        role = "holds the lock" if beat.holds_lock else "standby"
        table.add_row(
            beat.name,
            f"STALE (was: {role})" if beat.stale(now) else role,
            f"{age_s:.1f} s ago",
            short_time(beat.started_at, zone),
            ", ".join(beat.down),
            beat.last_error,
        )
    return table


def _queues_table(depths: list[QueueDepth]) -> Table:
    table = Table(title="Queues", title_justify="left", header_style="bold")
    for column in ("queue", "waiting", "consumed by"):
        table.add_column(column, overflow="fold")
    for depth in depths:
        table.add_row(depth.name, str(depth.waiting), ", ".join(depth.consumers) or "no worker!")
    return table


@click.command()
@json_option
@click.pass_obj
def workers(installation: Installation, as_json: bool) -> None:
    """Live workers (announced in the last 15 s), their queues, and the runs each runs now."""
    found = installation.control.workers()
    running = _running(installation)
    if as_json:
        print_json(
            [
                {
                    **worker.as_json(),
                    "running": [run.id for run in running if run.worker == worker.name],
                }
                for worker in found
            ]
        )
        return
    if not found:
        console.print("[dim]Workers: none alive (start one with bgproc worker)[/dim]")
    else:
        console.print(_workers_table(found, running, settings_zone(installation)))
    scheduler = scheduler_check(installation.control.beats(), _lock_held(installation),
                                datetime.now(UTC))  # fmt: skip
    if not scheduler.ok:
        console.print(f"[bold red]Scheduler: {scheduler.detail}[/bold red]")


def _lock_held(installation: Installation) -> bool:
    return bool(installation.redis.exists(installation.entries.conf.lock_key))


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
        print_json([beat.as_json(now) for beat in found])
        return
    if not found:
        console.print("[dim]Beats: none running (start one with bgproc beat or bgproc up)[/dim]")
        return
    console.print(_beats_table(found, now, settings_zone(installation)))
    scheduler = scheduler_check(found, _lock_held(installation), now)
    if not scheduler.ok:
        console.print(f"[bold red]Scheduler: {scheduler.detail}[/bold red]")


@click.command()
@json_option
@click.pass_obj
def queues(installation: Installation, as_json: bool) -> None:
    """Broker queues: messages waiting in each, and the live workers that consume it."""
    control = installation.control
    depths = control.queues(installation.queues)
    if as_json:
        print_json({"queues": [d.as_json() for d in depths], "unacked": control.unacked()})
        return
    console.print(_queues_table(depths))
    click.echo(f"taken by workers, not yet acknowledged: {control.unacked()}")


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

    A queued run is killed at once. A running one is asked to stop: its process sees
    ctx.should_stop() within about half a second and returns. Exit 0 once it is killed,
    1 if it still runs after --timeout, 4 if the run has ended or its process is not killable.
    """
    wait_s = parse_int(timeout, "timeout", 0, 86400)
    runs = installation.runs
    view = runs.get(run_id)
    if view.finished:
        raise Conflict(f"run {run_id} has already ended ({view.status.value})")
    if view.process.startswith(GROUP_LABEL_PREFIX):
        _kill_group(installation, view)
        return
    spec = installation.registry.get(view.process)
    if not spec.killable:
        raise Conflict(f"run {run_id}: process {spec.name} is not killable (it cannot be stopped)")
    installation.control.ask_kill(run_id)
    if view.status is RunStatus.queued:
        runs.close_open(
            run_id, "", RunStatus.killed, datetime.now(UTC), "killed before it started"
        )
    deadline = time.monotonic() + wait_s
    while not (view := runs.get(run_id)).finished and time.monotonic() < deadline:
        time.sleep(KILL_POLL_S)
    if view.status is RunStatus.killed:
        click.echo(f"run {run_id} killed")
        return
    if view.finished:
        click.echo(f"run {run_id} ended {view.status.value} before the kill took effect")
        return
    click.echo(f"run {run_id}: kill asked; still running after {wait_s} s", err=True)
    raise click.exceptions.Exit(1)


def _kill_group(installation: Installation, view: RunView) -> None:
    """A group run ends ``killed`` at once: no further step starts; its running step is
    asked to stop (if its process is killable) and ends as it may."""
    runs, now = installation.runs, datetime.now(UTC)
    runs.close_open(view.id, "", RunStatus.killed, now, "killed on request: no further step starts")
    for step in runs.steps(view.id):
        if not step.finished:
            installation.control.ask_kill(step.id)
            if step.status is RunStatus.queued:
                runs.close_open(step.id, "", RunStatus.killed, now, "killed before it started")
    click.echo(f"group run {view.id} killed")


def _runs_table(views: list[RunView], zone: ZoneInfo) -> Table:
    table = Table(title="Latest runs", title_justify="left", header_style="bold")
    for column in ("id", "process", "status", "when", "duration", "worker"):
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(
            str(view.id),
            view.process,
            view.status.value,
            short_time(view.when, zone),
            human_duration(view.duration_ms),
            view.worker or "",
        )
    return table


@click.command()
@click.option("--interval", default="1", metavar="SECONDS", help="Refresh every SECONDS (1..60).")
@click.option("--count", default=None, metavar="N", help="Refresh N times, then exit.")
@click.pass_obj
def watch(installation: Installation, interval: str, count: str | None) -> None:
    """A live view: workers, queues and the latest runs, refreshed until Ctrl-C.

    Into a pipe or a file, it prints a plain snapshot per refresh instead.
    """
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
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    done = 0
    try:
        if live is not None:
            live.start()
        while rounds is None or done < rounds:
            if done:
                time.sleep(every_s)
            done += 1
            if live is not None:
                live.update(view(), refresh=True)
            else:
                click.echo(f"-- {short_time(datetime.now(UTC), zone)}")
                console.print(view())
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    finally:
        if live is not None:
            live.stop()


COMMANDS = (workers, beats, queues, kill, watch)
