"""``bgproc processes``: what can be requested."""

from __future__ import annotations

import click

from bgproc.installation import Installation
from bgproc.services.documents import process_document
from cli.options import json_option
from cli.output import flags, print_json, print_table


@click.command()
@json_option
@click.pass_obj
def processes(installation: Installation, as_json: bool) -> None:
    """List the registered processes with their parameters and flags."""
    specs = installation.registry.all()
    if as_json:
        print_json([process_document(spec) for spec in specs])
        return
    print_table(
        "Processes",
        ["name", "description", "parameters", "flags", "queue", "time limit"],
        (
            [
                spec.name,
                spec.description,
                ", ".join(
                    [p.describe() for p in spec.params] + (["**any"] if spec.accepts_any else [])
                ),
                flags(prevent_concurrent=spec.prevent_concurrent, killable=spec.killable),
                spec.queue,
                f"{spec.time_limit_s} s" if spec.time_limit_s else "",
            ]
            for spec in specs
        ),
    )
