"""``bgproc group …``: Etendo's Process Group window — processes run one after another."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click

from bgproc.errors import InvalidInput
from bgproc.installation import Installation
from bgproc.timing.inputs import parse_params
from cli.options import json_option, settings_zone
from cli.output import flags, local_time, print_fields, print_json, print_table, say

if TYPE_CHECKING:
    from bgproc.services.groups import GroupView, StepView


def parse_step(text: str, position: int) -> dict[str, Any]:
    """``'sample.echo msg="hi there"'`` → ``{"process": "sample.echo", "params": {"msg": …}}``.

    Shell-style words, so a value may hold spaces inside quotes; errors name the step.
    """
    label = f"step {position}"
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise InvalidInput(label, f"{text!r}: {str(error).lower()}") from None
    if not words:
        raise InvalidInput(f"{label}: process", "is required")
    try:
        params = parse_params(words[1:])
    except InvalidInput as error:
        raise InvalidInput(f"{label}: {error.field}", error.why) from None
    return {"process": words[0], "params": params}


def step_text(step: StepView) -> str:
    """A step as it would be given to ``--step`` again (secrets stay ``***``)."""
    return shlex.join([step.process, *(f"{k}={v}" for k, v in step.params.items())])


def _group_options(command: Any) -> Any:
    """Options shared by create and update."""
    for decorator in reversed(
        [
            click.option(
                "--step",
                "steps",
                multiple=True,
                metavar='"PROCESS [KEY=VALUE ...]"',
                help="A process and its parameters, quoted as one argument; repeat in run "
                "order. Quote a value with spaces inside: --step 'sample.echo msg=\"hi there\"'.",
            ),
            click.option("--description", default=None, help="What the group is for."),
            click.option(
                "--stop-on-error/--continue-on-error",
                default=None,
                help="After a step fails, start no further step (default: continue).",
            ),
            click.option(
                "--prevent-concurrent/--allow-concurrent",
                default=None,
                help="Skip a fire while a run of this group is still going.",
            ),
            json_option,
        ]
    ):
        command = decorator(command)
    return command


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    fields = {
        key: options[key]
        for key in ("name", "description", "stop_on_error", "prevent_concurrent")
        if options.get(key) is not None
    }
    if options.get("steps"):
        fields["steps"] = [parse_step(text, n) for n, text in enumerate(options["steps"], 1)]
    return fields


def _show(installation: Installation, view: GroupView, as_json: bool) -> None:
    if as_json:
        print_json(view.as_json())
        return
    zone = settings_zone(installation)
    print_fields(
        f"Group {view.name}",
        [
            ("id", view.id),
            ("description", view.description or "-"),
            (
                "steps",
                "\n".join(f"{s.position}. {step_text(s)}" for s in view.steps)
                or "- (none: add one with --step before scheduling)",
            ),
            ("stop on error", "yes" if view.stop_on_error else "no"),
            ("prevent concurrent", "yes" if view.prevent_concurrent else "no"),
            ("requests", ", ".join(str(i) for i in view.requests) or "-"),
            ("created", local_time(view.created_at, zone)),
            ("updated", local_time(view.updated_at, zone)),
        ],
    )


@click.group()
def group() -> None:
    """Process groups: processes run one after another as one unit.

    Each step is a registered process with its own parameters. Schedule a group
    like a process: bgproc request create --group NAME --timing ... . With
    --stop-on-error a failed step ends the group's run; with --prevent-concurrent
    a fire is skipped while the group is still running.
    """


@group.command()
@click.argument("name")
@_group_options
@click.pass_obj
def create(installation: Installation, name: str, as_json: bool, **options: Any) -> None:
    """Create the group NAME from its steps, in run order.

    \b
    Example:
      bgproc group create nightly --step "sample.echo who=ana" \\
             --step "sample.sleep seconds=2" --stop-on-error

    Prints the new group's id (with --json, the group).
    """
    view = installation.groups.create(_fields({**options, "name": name}))
    if as_json:
        print_json(view.as_json())
    else:
        say(view.id)


@group.command("list")
@json_option
@click.pass_obj
def list_groups(installation: Installation, as_json: bool) -> None:
    """List process groups with their steps."""
    views = installation.groups.list()
    if as_json:
        print_json([v.as_json() for v in views])
        return
    print_table(
        "Process groups",
        ["id", "name", "steps", "flags", "requests", "description"],
        (
            [
                v.id,
                v.name,
                " → ".join(s.process for s in v.steps) or "(empty)",
                flags(stop_on_error=v.stop_on_error, prevent_concurrent=v.prevent_concurrent),
                len(v.requests),
                v.description,
            ]
            for v in views
        ),
    )


@group.command()
@click.argument("ident", metavar="NAME|ID")
@json_option
@click.pass_obj
def show(installation: Installation, ident: str, as_json: bool) -> None:
    """Show one group: its steps with their parameters, its flags, the requests using it."""
    _show(installation, installation.groups.get(ident), as_json)


@group.command()
@click.argument("ident", metavar="NAME|ID")
@click.option("--name", default=None, help="Rename the group (its requests follow it).")
@_group_options
@click.pass_obj
def update(installation: Installation, ident: str, as_json: bool, **options: Any) -> None:
    """Change a group; --step given once or more replaces all of its steps.

    Scheduled requests of the group run the new steps from their next fire.
    """
    _show(installation, installation.groups.update(ident, _fields(options)), as_json)


@group.command()
@click.argument("ident", metavar="NAME|ID")
@click.pass_obj
def delete(installation: Installation, ident: str) -> None:
    """Delete a group that no request uses (change or delete those requests first)."""
    view = installation.groups.delete(ident)
    say(f"group {view.name}: deleted")
