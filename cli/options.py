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
