"""Alembic environment, run only from ``bgproc.store.schema`` on a connection it passes in.

``bgproc.store.schema.upgrade`` opens the transaction (and takes the migration lock) itself, so
this file never connects, never reads an ini file and never commits.
"""

from __future__ import annotations

from alembic import context

from bgproc.store.models import ALEMBIC_VERSION_TABLE, Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("bgproc migrations run through `bgproc db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=ALEMBIC_VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
