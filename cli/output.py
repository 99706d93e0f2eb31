"""The only printer: rich tables for people, ``--json`` for machines, and the lines between
(:func:`say` on stdout, :func:`tell` on stderr); no other module of ``cli`` prints.

rich is imported when something is printed, not before: ``--help`` never needs it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


@cache
def console() -> Console:
    """The console of every table. Piped output is read by people too: tables get room
    rather than the 80 columns rich assumes."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def new_table(title: str | None, columns: Iterable[str]) -> Table:
    """An empty table with a header row, as every listing draws one."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def say(text: object = "", *, newline: bool = True) -> None:
    """A line of the command's output on stdout: what a script reads."""
    click.echo(text, nl=newline)


def tell(text: object) -> None:
    """A line about the command on stderr (progress, a hint, a warning, an error): never mixed
    into what a script reads from stdout."""
    click.echo(text, err=True)


def display(renderable: Any) -> None:
    """A table or a marked-up line (rich markup: ``[dim]…[/dim]``) on stdout."""
    console().print(renderable)


def print_json(data: Any) -> None:
    """JSON on stdout: ISO 8601 timestamps with offset, UTF-8 text as is."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def cells(*values: object) -> list[Text]:
    """Table cells shown as written: a process name or a parameter holding ``[/x]`` or
    ``:smile:`` is data, not rich markup or an emoji code (and is not parsed as either)."""
    from rich.text import Text

    return [Text("" if value is None else str(value)) for value in values]


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table with a header row; empty tables say so."""
    table = new_table(title, columns)
    count = 0
    for row in rows:
        table.add_row(*cells(*row))
        count += 1
    if count == 0:
        display(f"[dim]{title or 'nothing'}: none[/dim]")
        return
    display(table)


def print_fields(title: str, fields: Sequence[tuple[str, Any]]) -> None:
    """A two-column 'name: value' view of one object."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, *cells(value))
    display(table)


def local_time(instant: datetime | None, zone: Any = None) -> str:
    """An instant as the user reads it: in ``zone`` (or the machine's), with its offset."""
    if instant is None:
        return ""
    shown = instant.astimezone(zone) if zone is not None else instant.astimezone()
    return shown.isoformat(sep=" ")


def flags(**named: bool) -> str:
    """The names of the flags that are on, as a table cell: ``flags(killable=True)``."""
    return " ".join(name.replace("_", "-") for name, on in named.items() if on)
