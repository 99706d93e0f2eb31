"""``bgproc worker``, ``beat``, ``up`` and ``sync``: the processes that make requests run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from bgproc.errors import BgprocError, Unavailable
from bgproc.installation import Installation
from cli.options import json_option
from cli.output import print_json

DATABASE_WAIT_S = 1.0  # a service started while the database is down tries again this often
PASS_THROUGH = {
    "ignore_unknown_options": True,
    "allow_extra_args": True,
    "help_option_names": ["-h", "--help"],
}


def _schema_checked(command: Installation) -> Installation:
    """The service's installation (its clients ride outages out, unlike the command's),
    once the database answers (started while it is down, a service waits for it), refusing
    to start on a schema of another version (one line, exit 5) instead of failing every
    run later: under a supervisor, the restarts then wait for ``bgproc db upgrade``.
    The connection is closed at once: none may cross the fork into pool children (SQLite's
    locks and shared memory break when a child inherits and closes one)."""
    from bgproc.db import ensure_schema
    from bgproc.outages import outage_of

    installation = command.as_service()
    waiting = False
    while True:
        try:
            ensure_schema(installation.engine)
            break
        except Unavailable as error:
            if error.__cause__ is None or outage_of(error.__cause__) is None:
                raise  # a schema of another version: waiting would not help
            if not waiting:
                click.echo(f"bgproc: {error}; waiting for it", err=True)
                waiting = True
            time.sleep(DATABASE_WAIT_S)
    if waiting:
        click.echo("bgproc: the database answers; starting", err=True)
    installation.engine.dispose()
    return installation


def _worker_argv(installation: Installation, extra: list[str]) -> list[str]:
    argv = ["worker", "--loglevel=INFO"]
    if not any(a in ("-Q", "--queues") or a.startswith("--queues=") for a in extra):
        argv.append(f"--queues={','.join(installation.queues)}")
    return argv + extra


@click.command(context_settings=PASS_THROUGH)
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a Celery worker for the processes (extra options go to `celery worker`).

    By default it consumes every queue a registered process uses; -Q picks some.
    Example: bgproc worker --concurrency 4 -Q billing
    """
    installation = _schema_checked(ctx.obj)
    installation.app.worker_main(_worker_argv(installation, ctx.args))


@click.command(context_settings=PASS_THROUGH)
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run the scheduler (RedBeat): publishes requests when due (extra options go to `celery beat`).

    Several beats may run: one holds the lock, the others stand by and take over
    within the lock timeout. Each reconciles Redis with the database when it starts.
    """
    installation = _schema_checked(ctx.obj)
    installation.app.start(
        ["beat", "--loglevel=INFO", "--scheduler=bgproc.beat:Scheduler", *ctx.args]
    )


@click.command(context_settings=PASS_THROUGH)
@click.pass_context
def up(ctx: click.Context) -> None:
    """One-machine mode: a worker with an embedded beat (extra options go to `celery worker`).

    The worker watches its beat and starts it again if it exits; if the beat keeps dying,
    the worker stops and `up` exits 1 with one line saying why.
    """
    from bgproc.embedded import BeatSupervisor, SupervisedBeat

    installation = _schema_checked(ctx.obj)
    installation.app.steps["worker"].add(SupervisedBeat)
    try:
        installation.app.worker_main(_worker_argv(installation, ctx.args))
    finally:
        if BeatSupervisor.gave_up:
            raise BgprocError(BeatSupervisor.gave_up)


@click.command()
@json_option
@click.pass_obj
def sync(installation: Installation, as_json: bool) -> None:
    """Reconcile Redis with the database: rebuild missing entries, drop orphans.

    Safe at any time: nothing fires twice (a rebuilt entry counts from the last recorded run).
    """
    from bgproc.sync import sync as reconcile

    report = reconcile(installation, datetime.now(UTC))
    if as_json:
        print_json(report.as_json())
    else:
        click.echo(report.summary())
