"""The ``bgproc`` root command and the one error sink (design §5 error contract).

Every refusal leaves as one ``Error: …`` line on stderr with a non-zero exit
code; a traceback is printed only with ``--verbose``.
"""

from __future__ import annotations

import gc
import re
import sys
import traceback
from enum import IntEnum

import click

from bgproc import __version__
from bgproc.errors import (
    BgprocError,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    first_line,
)
from bgproc.installation import Installation
from bgproc.settings import Settings, redact_url
from cli.lazy import LazyGroup
from cli.output import say, tell


class Exit(IntEnum):
    """Exit codes a script can tell apart."""

    OK = 0
    FAILED = 1  # the command ran and its outcome was a failure (e.g. a run that errored)
    INVALID = 2  # bad input (click's usage errors use 2 as well)
    NOT_FOUND = 3
    CONFLICT = 4
    UNAVAILABLE = 5  # Redis or the database cannot be reached
    BUG = 70  # an unexpected error: please report it


EXIT_OF = {
    InvalidInput: Exit.INVALID,
    NotFound: Exit.NOT_FOUND,
    Conflict: Exit.CONFLICT,
    Unavailable: Exit.UNAVAILABLE,
}
MAX_ERROR_CHARS = 300  # a message may quote what the user typed: a megabyte of it helps no one


COMMANDS = {  # each command's module is imported when it is run (cli.lazy)
    "processes": "cli.processes:processes",
    "request": "cli.requests:request",
    "preview": "cli.requests:preview",
    "group": "cli.groups:group",
    "alert": "cli.alerts:alert",
    "calendar": "cli.calendars:calendar",
    "db": "cli.db:db",
    "run": "cli.run:run",
    "monitor": "cli.monitor:monitor",
    "health": "cli.health:health",
    "web": "cli.web:web",
    "worker": "cli.runtime:worker",
    "beat": "cli.runtime:beat",
    "up": "cli.runtime:up",
    "sync": "cli.runtime:sync",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="bgproc")
@click.option("--verbose", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """bgproc: plan background processes (Process Requests), run them on Celery workers,
    and see every run with its log (Process Monitor).

    Configuration comes from BGPROC_* environment variables: BGPROC_BROKER_URL,
    BGPROC_DATABASE_URL (default sqlite:///bgproc.db), BGPROC_TIMEZONE, BGPROC_IMPORTS,
    BGPROC_KEY_PREFIX.
    """
    ctx.obj = Installation(Settings.from_env(), interactive=True)
    ctx.meta["verbose"] = verbose


def _fail(message: str, code: Exit) -> int:
    """Print the one line: a quoted value's line breaks and other controls come out escaped."""
    clipped = message[:MAX_ERROR_CHARS]
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in clipped)
    tell(f"Error: {line}{'…' if len(message) > len(clipped) else ''}")
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map every error to one line and an exit code."""
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="bgproc", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.NoArgsIsHelpError as bare:  # `bgproc`, `bgproc request`: help
        say(bare.ctx.get_help() if bare.ctx is not None else bare.format_message())
        return Exit.OK
    except click.Abort:
        return _fail("aborted", Exit.FAILED)
    except click.NoSuchOption as error:
        refusal = _number_taken_for_an_option(error)
        if refusal is not None:
            return _fail(str(refusal), Exit.INVALID)
        return _fail(error.format_message() + " (see --help)", Exit.INVALID)
    except click.ClickException as error:  # usage errors: one line too, with a hint
        hint = " (see --help)" if isinstance(error, click.UsageError) else ""
        return _fail(error.format_message() + hint, Exit.INVALID)
    except BgprocError as error:
        code = next((c for kind, c in EXIT_OF.items() if isinstance(error, kind)), Exit.FAILED)
        return _fail(_describe(error), code)
    except KeyboardInterrupt:
        return _fail("interrupted", Exit.FAILED)
    except Exception as error:  # the sink: a bug still gets one line, and --verbose tells more
        if _raised_by(error, "redis.exceptions", "RedisError"):
            return _fail(_describe(Unavailable.of_redis(error)), Exit.UNAVAILABLE)
        if _raised_by(error, "sqlalchemy.exc", "SQLAlchemyError"):
            url = redact_url(Settings.from_env().database_url)
            return _fail(f"database error at {url}: {first_line(error)}", Exit.UNAVAILABLE)
        if verbose:
            traceback.print_exc()
        return _fail(f"unexpected {type(error).__name__}: {first_line(error)}", Exit.BUG)
    return code if isinstance(code, int) else Exit.OK  # non-standalone click returns Exit codes


def _raised_by(error: Exception, module: str, base: str) -> bool:
    """Whether ``error`` is a ``module.base``: asked without importing the library, which
    a command that never loaded it cannot have raised (commands load what they use)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(error, getattr(loaded, base))


def _number_taken_for_an_option(error: click.NoSuchOption) -> InvalidInput | None:
    """``request show -5``: click takes the -5 for an option; the id's own check names it."""
    if error.ctx is None or not re.fullmatch(r"-[0-9]+", error.option_name):
        return None
    from cli.options import WholeNumber

    for param in error.ctx.command.params:
        if isinstance(param, click.Argument) and isinstance(param.type, WholeNumber):
            try:
                param.type.convert(error.option_name, param, error.ctx)
            except InvalidInput as refusal:
                return refusal
    return None


def _describe(error: BgprocError) -> str:
    """The error's line; an unreachable Redis is named by its URLs (passwords redacted)."""
    if isinstance(error, Unavailable) and error.service == "redis":
        return f"redis is unreachable at {Settings.from_env().redis_urls}: {error.detail}"
    return str(error)


def run() -> None:
    """Console-script entry point.

    The objects a command loaded are frozen out of the collector before the interpreter
    exits: its final collections would walk every one of them for nothing, a quarter of a
    listing's time (bench/bench_cli.py).
    """
    code = main()
    gc.freeze()
    sys.exit(code)
