"""``bgproc db``: the monitor database's schema."""

from __future__ import annotations

import click

from bgproc.installation import Installation
from bgproc.settings import redact_url
from cli.output import say


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations)."""


@db.command("upgrade")
@click.pass_obj
def upgrade_command(installation: Installation) -> None:
    """Create or migrate the schema to the current version (safe to run again)."""
    from bgproc.store.schema import upgrade

    upgrade(installation.engine)
    say(f"database schema is up to date at {redact_url(installation.settings.database_url)}")
