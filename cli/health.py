"""``bgproc health``: exit 0 only when this installation is scheduling (for probes and alarms)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bgproc.installation import Installation
from bgproc.services.documents import health_document
from cli.options import json_option
from cli.output import print_json, print_table


@click.command()
@json_option
@click.pass_obj
def health(installation: Installation, as_json: bool) -> None:
    """Check Redis, the database, the scheduler and the workers; exit 1 if any is wrong.

    Healthy: Redis and the database answer, a beat holds the lock and ticked within 5 s,
    and at least one worker is live. Each line says what was found. Meant for a container
    health check or a cron alarm: `bgproc health --json || alert`.
    """
    from bgproc.services.health import check

    checks = check(installation.control, installation.engine, datetime.now(UTC))
    document = health_document(checks)
    healthy = document["healthy"]
    if as_json:
        print_json(document)
    else:
        rows = [(c.name, "ok" if c.ok else "FAIL", c.detail) for c in checks]
        print_table("Health", ("check", "status", "detail"), rows)
    if not healthy:
        raise click.exceptions.Exit(1)
