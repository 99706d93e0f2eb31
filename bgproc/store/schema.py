"""The schema's revision: checked once per engine without Alembic, migrated with it.

A command whose schema is at head reads one row with plain SQL and loads no Alembic (the
CLI starts fast); SQLite is migrated on the spot, a shared PostgreSQL only on purpose.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from bgproc.errors import SchemaMismatch
from bgproc.store.forkgate import READ_ONLY, in_use, redacted
from bgproc.store.models import ALEMBIC_VERSION_TABLE, SCHEMA_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 0x62677072_6F63  # "bgproc": PG advisory lock serialising upgrades

_schema_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_schema(engine: Engine) -> None:
    """Make sure the schema is at head before first use (checked once per engine).

    SQLite is embedded, so it is migrated on the spot (only then taking the write lock); a
    shared PostgreSQL is only migrated on purpose, by ``bgproc db upgrade``.
    """
    if engine in _schema_ready:
        return
    with in_use(engine), engine.connect() as connection:
        current = _current_revisions(connection.execution_options(**{READ_ONLY: True}))
    if current == {SCHEMA_REVISION}:
        _schema_ready.add(engine)
    elif engine.dialect.name == "sqlite":
        upgrade(engine)  # checked again under the write lock: another process may be at it
    else:
        raise SchemaMismatch(_outdated(current), redacted(engine))


def _current_revisions(connection: Connection) -> set[str]:
    """The schema's revisions, read with plain SQL: a command at head loads no Alembic."""
    if not inspect(connection).has_table(ALEMBIC_VERSION_TABLE):
        return set()
    rows = connection.execute(text(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}"))
    return {row[0] for row in rows}


def upgrade(engine: Engine) -> None:
    """Migrate to head; safe to run again, or from several processes at once."""
    from alembic import command
    from alembic.util import CommandError

    with in_use(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until commit; on SQLite, BEGIN IMMEDIATE already serialises upgrades.
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        config = _alembic_config()
        config.attributes["connection"] = connection
        try:
            with _alembic_quiet():
                command.upgrade(config, "head")
        except CommandError as exc:
            raise SchemaMismatch(str(exc), redacted(engine)) from exc
    _schema_ready.add(engine)


def _alembic_config() -> Config:
    """Alembic's configuration, built in code: the scripts ship inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revisions() -> frozenset[str]:
    """The heads of the migration scripts (:data:`SCHEMA_REVISION` must be the one)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(_alembic_config()).get_heads())


def _known_revisions() -> frozenset[str]:
    """Every revision this bgproc ships, to tell an old schema from a newer one."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's INFO lines ("Context impl SQLiteImpl.") under bgproc's own schema checks
    and upgrades: noise in a worker's console, where Celery logs INFO from every logger."""
    alembic = logging.getLogger("alembic")
    level = alembic.level
    alembic.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        alembic.setLevel(level)


def _outdated(current: set[str]) -> str:
    """Why the schema is refused, and what to do about it."""
    if not current:
        return f"no bgproc schema yet (need revision {SCHEMA_REVISION}); run `bgproc db upgrade`"
    found = ", ".join(sorted(current))
    if current - _known_revisions():
        return f"schema revision {found} is newer than this bgproc's ({SCHEMA_REVISION})"
    return f"schema is at revision {found}, not {SCHEMA_REVISION}; run `bgproc db upgrade`"
