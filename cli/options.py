"""Options shared by several commands: the timing options, ``--param``, ``--json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from bgproc.errors import InvalidInput
from bgproc.installation import Installation
from bgproc.timing.fields import TIMING_FIELDS, TIMING_KEYS
from bgproc.timing.inputs import parse_int

F = Callable[..., Any]


class WholeNumber(click.ParamType):
    """An id argument read as bgproc reads every number: ASCII digits only (click's own
    ``int`` would take ``٣`` for 3), within bounds, an error naming the field."""

    name = "integer"

    def __init__(self, field: str, high: int) -> None:
        self.field = field
        self.high = high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        return value if isinstance(value, int) else parse_int(value, self.field, 1, self.high)


def timing_options(command: F) -> F:
    """Add an option per timing field, as plain text: bgproc validates them, naming the field."""
    for field in reversed(TIMING_FIELDS):
        option = click.option(
            f"--{field.label}", field.key, default=None, metavar=field.metavar, help=field.help
        )
        command = option(command)
    return command


def retry_options(command: F) -> F:
    """``--retries N --retry-backoff D [--retry-max D] [--retry-jitter]``, as plain text:
    bgproc validates them (:func:`bgproc.timing.retry.read_retry`), naming the option."""
    for option in reversed(
        [
            click.option(
                "--retries",
                default=None,
                metavar="N",
                help="Retries on error (Celery's autoretry, K8s backoffLimit): a run that "
                "ends error is run again, up to N more times (0: never; default: the "
                "process's). E.g. --retries 3 --retry-backoff 30s runs it again 30 s after "
                "the first failure, 60 s after the second and 120 s after the third.",
            ),
            click.option(
                "--retry-backoff",
                default=None,
                metavar="DURATION",
                help="Wait before the first retry (30s, 5m, 1h; default 30s), doubled "
                "before each next one (Celery's retry_backoff).",
            ),
            click.option(
                "--retry-max",
                default=None,
                metavar="DURATION",
                help="Wait at most this long between retries (Celery's retry_backoff_max).",
            ),
            click.option(
                "--retry-jitter/--no-retry-jitter",
                default=None,
                help="Draw each wait at random between 0 and its backoff (Celery's "
                "retry_jitter), so that many failed runs do not all retry at once.",
            ),
        ]
    ):
        command = option(command)
    return command


def deadline_options(command: F) -> F:
    """``--start-deadline D --max-runtime D [--kill-overdue]``, as plain text: bgproc
    validates them (:func:`bgproc.timing.deadlines.read_deadlines`), naming the option."""
    for option in reversed(
        [
            click.option(
                "--start-deadline",
                default=None,
                metavar="DURATION|none",
                help="Start deadline (K8s startingDeadlineSeconds, Quartz's misfire "
                "threshold): a run not started this long after it was due (all workers "
                "busy or down) ends expired instead of starting late. E.g. --start-deadline "
                "5m; none: no deadline (default: the process's).",
            ),
            click.option(
                "--max-runtime",
                default=None,
                metavar="DURATION|none",
                help="Maximum runtime (K8s activeDeadlineSeconds): a run still going this "
                "long after it started is marked overdue in the monitor. E.g. --max-runtime "
                "10m; none: no limit (default: the process's).",
            ),
            click.option(
                "--kill-overdue/--no-kill-overdue",
                default=None,
                help="Kill an overdue run (it ends killed, saying so); a killable process "
                "only. E.g. --max-runtime 10m --kill-overdue.",
            ),
        ]
    ):
        command = option(command)
    return command


def calendar_options(command: F) -> F:
    """``--calendar NAME`` (repeatable) and ``--on-excluded skip|next-business-day``."""
    for option in reversed(
        [
            click.option(
                "--calendar",
                "calendars",
                multiple=True,
                metavar="NAME",
                help="Follow this calendar's exclusions (bgproc calendar create); repeat for "
                "more. An excluded fire does not run (Quartz's calendars).",
            ),
            click.option(
                "--on-excluded",
                default=None,
                metavar="skip|next-business-day",
                help="What an excluded fire becomes: nothing (skip, the default: Quartz's "
                "behaviour), or a run at the same time on the next business day, Monday to "
                "Friday and not excluded (next-business-day: a fire on a weekend moves too; "
                "one in an excluded window moves to its end). E.g. --frequency monthly --day 1 "
                "--calendar es-holidays --on-excluded next-business-day closes on the 1st, or "
                "the next working day.",
            ),
        ]
    ):
        command = option(command)
    return command


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(
        command
    )


def param_option(command: F) -> F:
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        help="A process parameter; repeat for more.",
    )(command)


def timing_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The timing options given on the command line, keyed as the service expects."""
    return {key: options[key] for key in TIMING_KEYS if options.get(key) is not None}


def settings_zone(installation: Installation) -> ZoneInfo:
    """The zone that times are shown in: BGPROC_TIMEZONE, else the machine's."""
    name = installation.settings.timezone
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise InvalidInput("BGPROC_TIMEZONE", f"{name!r} is not a time zone") from None
