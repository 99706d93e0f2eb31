"""``bgproc worker``, ``beat``, ``up`` and ``sync``: the processes that make requests run."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import click

from bgproc.errors import BgprocError, Unavailable
from bgproc.installation import Installation
from cli.options import json_option
from cli.output import print_json, say, tell

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
    from bgproc.outages import outage_of
    from bgproc.store.schema import ensure_schema

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
                tell(f"bgproc: {error}; waiting for it")
                waiting = True
            time.sleep(DATABASE_WAIT_S)
    if waiting:
        tell("bgproc: the database answers; starting")
    installation.engine.dispose()
    return installation


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PASSES_ON = "Any other option of `celery {0}` (see `celery {0} --help`) is passed on to it."


def _loglevel() -> click.Option:
    levels = click.Choice(LOG_LEVELS, case_sensitive=False)
    return click.Option(["-l", "--loglevel"], type=levels, default="INFO", show_default=True,
                        help="What the console shows.")  # fmt: skip


def _worker_options() -> list[click.Option]:
    """The `celery worker` options most need, declared so that --help and completion show
    them; Celery gets them under its own names."""
    return [
        click.Option(["-c", "--concurrency"], type=click.IntRange(min=1), metavar="N",
                     show_default="one per CPU", help="How many runs at once (pool processes)."),
        click.Option(["-Q", "--queues"], metavar="QUEUE[,QUEUE...]",
                     show_default="every queue a process uses", help="The queues to consume."),
        click.Option(["-n", "--hostname"], metavar="NAME", show_default="celery@%h",
                     help="The worker's name: each worker on a machine needs its own."),
        _loglevel(),
    ]  # fmt: skip


def celery_argv(command: str, options: dict[str, object], extra: list[str]) -> list[str]:
    """``celery COMMAND``'s arguments: the declared options that were given, then the rest."""
    given = [f"--{name}={value}" for name, value in options.items() if value is not None]
    return [command, *given, *extra]


def _worker_argv(installation: Installation, ctx: click.Context) -> list[str]:
    given = {k: v for k, v in ctx.params.items() if k not in UP_ONLY}
    options = {**given, "queues": ctx.params["queues"] or ",".join(installation.queues)}
    return celery_argv("worker", options, ctx.args)


UP_ONLY = ("web", "bind")  # options of `up` itself, not of Celery's worker


def _web_options() -> list[click.Option]:
    return [
        click.Option(["--web"], is_flag=True,
                     help="Serve the web windows too (bgproc web), stopping with up."),
        click.Option(["--bind"], metavar="HOST:PORT", default=None,
                     help="Where --web listens (default 127.0.0.1:8765; implies --web). Any "
                     "address but loopback needs BGPROC_WEB_TOKEN or BGPROC_WEB_USERS_FILE."),
    ]  # fmt: skip


@click.command(
    context_settings=PASS_THROUGH, params=_worker_options(), epilog=PASSES_ON.format("worker")
)
@click.pass_context
def worker(ctx: click.Context, **_: object) -> None:
    """Run a Celery worker for the processes.

    By default it consumes every queue a registered process uses; -Q picks some.
    Example: bgproc worker --concurrency 4 -Q billing -n billing@%h
    """
    installation = _schema_checked(ctx.obj)
    installation.app.worker_main(_worker_argv(installation, ctx))


@click.command(context_settings=PASS_THROUGH, params=[_loglevel()],
               epilog=PASSES_ON.format("beat"))  # fmt: skip
@click.pass_context
def beat(ctx: click.Context, **_: object) -> None:
    """Run the scheduler (RedBeat): publishes requests when due.

    Several beats may run: one holds the lock, the others stand by and take over
    within the lock timeout. Each reconciles Redis with the database when it starts.
    """
    installation = _schema_checked(ctx.obj)
    options = {**ctx.params, "scheduler": "bgproc.runtime.beat:Scheduler"}
    installation.app.start(celery_argv("beat", options, ctx.args))


@click.command(
    context_settings=PASS_THROUGH, params=[*_worker_options(), *_web_options()],
    epilog=PASSES_ON.format("worker"),
)  # fmt: skip
@click.pass_context
def up(ctx: click.Context, web: bool, bind: str | None, **_: object) -> None:
    """One-machine mode: a worker with an embedded beat (and, with --web, the web windows).

    The worker watches its beat and starts it again if it exits; if the beat keeps dying,
    the worker stops and `up` exits 1 with one line saying why. The web server is a child
    process of the worker, started again if it exits, and stopped with it.
    """
    from bgproc.runtime.embedded import BeatSupervisor, SupervisedBeat

    web_argv = _web_argv(ctx.obj, bind) if web or bind else None
    installation = _schema_checked(ctx.obj)
    installation.app.steps["worker"].add(SupervisedBeat)
    if web_argv is not None:
        from bgproc.runtime.sidecar import sidecar_step

        installation.app.steps["worker"].add(sidecar_step("web server", web_argv))
    try:
        installation.app.worker_main(_worker_argv(installation, ctx))
    finally:
        if BeatSupervisor.gave_up:
            raise BgprocError(BeatSupervisor.gave_up)


def _web_argv(installation: Installation, bind: str | None) -> list[str]:
    """``bgproc web``'s command line, its address checked now: a refusal stops up at once."""
    from cli.web import DEFAULT_BIND, checked_bind, web_users

    address = bind or DEFAULT_BIND
    checked_bind(address, installation.settings.web_token, bool(web_users(installation)))
    return [sys.executable, "-m", "bgproc", "web", "--bind", address]


@click.command()
@json_option
@click.pass_obj
def sync(installation: Installation, as_json: bool) -> None:
    """Reconcile Redis with the database: rebuild missing entries, drop orphans.

    Safe at any time: nothing fires twice (a rebuilt entry counts from the last recorded run).
    """
    from bgproc.services.sync import sync as reconcile

    report = reconcile(
        installation.engine, installation.entries, installation.registry, datetime.now(UTC)
    )
    if as_json:
        print_json(report.as_json())
    else:
        say(report.summary())
