"""``bgproc alert test``: send one alert now, to see that it arrives where it should."""

from __future__ import annotations

import click

from bgproc.installation import Installation
from cli.output import say, tell
from cli.requests import REQUEST_ID


@click.group()
def alert() -> None:
    """Alerts: where a run that ends error, lost, misfired or expired is told of (README)."""


@alert.command("test")
@click.option("--request", "request_id", type=REQUEST_ID, default=None, metavar="ID",
              help="Send to where this request's alerts go.")  # fmt: skip
@click.option("--webhook", default=None, metavar="URL", help="Send to this webhook instead.")
@click.option("--email", default=None, metavar="ADDRESS", help="Send to this address instead.")
@click.pass_obj
def test(
    installation: Installation, request_id: int | None, webhook: str | None, email: str | None
) -> None:
    """Send one test alert now (event "test"); exit 1 if a channel did not take it.

    E.g. bgproc alert test --webhook https://hooks.example.com/bgproc, or --request 3 for
    that request's targets (its own, its process's, or BGPROC_ALERT_WEBHOOK/_EMAIL).
    """
    from bgproc.services.alerting import send_test

    targets, done, failed = send_test(
        installation.settings, installation.registry, installation.engine,
        request_id=request_id, webhook=webhook, email=email,
    )  # fmt: skip
    for channel, where in targets.channels.items():
        if channel in done:
            say(f"sent to {channel} {where}")
    for line in failed:
        tell(f"Error: not sent: {line}")
    if failed:
        raise click.exceptions.Exit(1)
