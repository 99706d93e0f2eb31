"""``bgproc monitor rerun`` and ``bgproc request run``: a run again, a request once now.

The rules are :mod:`bgproc.services.adhoc`'s; here only the parsing and the printing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bgproc.installation import Installation
from cli.monitor import RUN_ID, show
from cli.options import json_option
from cli.output import say
from cli.requests import REQUEST_ID
from cli.run import follow


def _started_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in (
        json_option,
        click.option(
            "--timeout", default=None, type=float, metavar="SECONDS",
            help="With --wait: give up after this long (exit 1).",
        ),
        click.option("--wait", is_flag=True, help="Follow the run; exit 0 only if it succeeds."),
    ):  # fmt: skip
        command = option(command)
    return command


def _started(
    ctx: click.Context, run_id: int, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """The new run's id (with --json, its ``monitor show --json``, once followed)."""
    if not as_json:
        say(run_id)
    try:
        if wait:
            follow(ctx.obj, run_id, timeout)
    finally:
        if as_json:
            ctx.invoke(show, run_id=run_id, as_json=True)


@click.command("rerun")
@click.argument("run_id", type=RUN_ID, metavar="RUN_ID")
@_started_options
@click.pass_context
def rerun(
    ctx: click.Context, run_id: int, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Run RUN_ID's process again, now, with the same parameters (secrets included).

    A new ad-hoc run; prints its id. A group run cannot be run again (its request can:
    bgproc request run ID), nor a misfired run with a secret parameter (it was never kept).
    """
    from bgproc.services.adhoc import rerun as run_again

    installation: Installation = ctx.obj
    again = run_again(installation.registry, installation.runs, installation.app, run_id)
    _started(ctx, again, wait, timeout, as_json)


@click.command("run")
@click.argument("request_id", type=REQUEST_ID, metavar="ID")
@_started_options
@click.pass_context
def run_request(
    ctx: click.Context, request_id: int, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Run request ID once, now, leaving its plan alone (the web's Run now).

    Its next fires and its status stay as they were, whatever its status; the run is
    the request's (monitor list --request ID), marked direct. Prints the run's id.
    """
    from bgproc.services.adhoc import run_request as run_now

    installation: Installation = ctx.obj
    run_id = run_now(installation.requests, installation.registry, installation.runs,
                     installation.app, request_id)  # fmt: skip
    _started(ctx, run_id, wait, timeout, as_json)
