"""``bgproc run``: one ad-hoc run, now, optionally followed to its end."""

from __future__ import annotations

import time

import click

from bgproc.installation import Installation
from bgproc.statuses import RunStatus
from bgproc.timing.inputs import parse_params
from cli.options import param_option
from cli.output import say, tell

POLL_S = 0.2


@click.command()
@click.argument("process")
@param_option
@click.option("--wait", is_flag=True, help="Follow the run; exit 0 only if it succeeds.")
@click.option(
    "--timeout",
    default=None,
    type=float,
    metavar="SECONDS",
    help="With --wait: give up after this long (exit 1).",
)
@click.pass_obj
def run(
    installation: Installation,
    process: str,
    params: tuple[str, ...],
    wait: bool,
    timeout: float | None,
) -> None:
    """Run PROCESS once, now, on a worker; prints the run id."""
    from bgproc.services.adhoc import launch

    run_id = launch(
        installation.registry, installation.runs, installation.app, process, parse_params(params)
    )
    say(run_id)
    if wait:
        follow(installation, run_id, timeout)


def follow(installation: Installation, run_id: int, timeout: float | None) -> None:
    """Say each status of the run on stderr until it ends; exit 1 unless it succeeded
    (or when ``timeout`` seconds pass first)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = RunStatus.queued
    while True:
        view = installation.runs.get(run_id)
        if view.status is not shown:
            tell(f"run {run_id}: {view.status.value}")
            shown = view.status
        if view.finished:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise click.exceptions.Exit(1)
        time.sleep(POLL_S)
    if view.status is not RunStatus.success:
        if view.error:
            tell(f"run {run_id}: {view.error}")
        raise click.exceptions.Exit(1)
