"""``bgproc calendar …``: named exclusions that requests follow (Quartz's calendars)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from bgproc.installation import Installation
from cli.options import json_option, settings_zone
from cli.output import local_time, print_fields, print_json, print_table, say

if TYPE_CHECKING:
    from bgproc.services.calendars import CalendarView

LISTS = {"dates": "date", "yearly": "yearly", "windows": "window"}


def _calendar_options(command: Any) -> Any:
    """Options shared by create and update."""
    for decorator in reversed(
        [
            click.option(
                "--date",
                "dates",
                multiple=True,
                metavar="YYYY-MM-DD",
                help="Exclude this date, the whole day in --tz (Quartz's HolidayCalendar); "
                "repeat for more. E.g. --date 2027-01-06.",
            ),
            click.option(
                "--yearly",
                multiple=True,
                metavar="MM-DD",
                help="Exclude this day every year (Quartz's AnnualCalendar; 02-29 in leap "
                "years only); repeat for more. E.g. --yearly 12-25.",
            ),
            click.option(
                "--window",
                "windows",
                multiple=True,
                metavar="HH:MM-HH:MM",
                help="Exclude this span of every day, start included, end not, up to 24:00 "
                "(Quartz's DailyCalendar); to cross midnight give two. E.g. --window "
                "13:00-15:00.",
            ),
            click.option(
                "--tz", default=None, metavar="ZONE",
                help="The zone its dates and windows are in (default: BGPROC_TIMEZONE).",
            ),
            json_option,
        ]
    ):  # fmt: skip
        command = decorator(command)
    return command


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """Given lists replace the old ones; ``--date ''`` (an empty value) clears one."""
    fields: dict[str, Any] = {k: list(options[k]) for k in LISTS if options.get(k)}
    if options.get("tz") is not None:
        fields["tz"] = options["tz"]
    return fields


def _show(installation: Installation, view: CalendarView, as_json: bool) -> None:
    if as_json:
        print_json(view.as_json())
        return
    zone = settings_zone(installation)
    fields = view.calendar.fields()
    print_fields(
        f"Calendar {view.name}",
        [
            ("id", view.id),
            ("zone", fields["tz"]),
            ("dates", ", ".join(fields["dates"]) or "-"),
            ("yearly", ", ".join(fields["yearly"]) or "-"),
            ("windows", ", ".join(fields["windows"]) or "-"),
            ("requests", ", ".join(str(i) for i in view.requests) or "-"),
            ("created", local_time(view.created_at, zone)),
            ("updated", local_time(view.updated_at, zone)),
        ],
    )


@click.group()
def calendar() -> None:
    """Calendars: named excluded dates, yearly dates and daily windows.

    A request follows calendars with --calendar NAME (several allowed); a fire that one
    of them excludes does not run (--on-excluded skip), or runs on the next business day
    (--on-excluded next-business-day). Editing a calendar re-plans its requests at once.

    \b
    Example:
      bgproc calendar create es-holidays --date 2027-01-06 --yearly 12-25 \\
             --window 13:00-15:00 --tz Europe/Madrid
    """


@calendar.command()
@click.argument("name")
@_calendar_options
@click.pass_obj
def create(installation: Installation, name: str, as_json: bool, **options: Any) -> None:
    """Create the calendar NAME. Prints its id (with --json, the calendar)."""
    view = installation.calendars.create({**_fields(options), "name": name})
    if as_json:
        print_json(view.as_json())
    else:
        say(view.id)


@calendar.command("list")
@json_option
@click.pass_obj
def list_calendars(installation: Installation, as_json: bool) -> None:
    """List calendars with what they exclude."""
    views = installation.calendars.list()
    if as_json:
        print_json([v.as_json() for v in views])
        return
    print_table(
        "Calendars",
        ["id", "name", "excludes", "requests"],
        ([v.id, v.name, v.calendar.describe(), len(v.requests)] for v in views),
    )


@calendar.command()
@click.argument("ident", metavar="NAME|ID")
@json_option
@click.pass_obj
def show(installation: Installation, ident: str, as_json: bool) -> None:
    """Show one calendar and the requests that follow it."""
    _show(installation, installation.calendars.get(ident), as_json)


@calendar.command()
@click.argument("ident", metavar="NAME|ID")
@_calendar_options
@click.pass_obj
def update(installation: Installation, ident: str, as_json: bool, **options: Any) -> None:
    """Change a calendar: a --date, --yearly or --window given replaces all of its kind
    (an empty value, e.g. --date '', clears them). Every scheduled request that follows
    the calendar is re-planned at once."""
    _show(installation, installation.calendars.update(ident, _fields(options)), as_json)


@calendar.command()
@click.argument("ident", metavar="NAME|ID")
@click.pass_obj
def delete(installation: Installation, ident: str) -> None:
    """Delete a calendar that no request follows."""
    view = installation.calendars.delete(ident)
    say(f"calendar {view.name}: deleted")
