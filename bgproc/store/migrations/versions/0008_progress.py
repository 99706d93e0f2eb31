"""A run's progress: the latest ``ctx.progress(done, total, message)`` report, as JSON.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

One nullable column, written by the worker's recorder with the run's other changes (at
most every 0.2 s, whatever the process reports), read by ``monitor show``, ``watch``, the
run's page and the API.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bgproc_run", sa.Column("progress", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    op.drop_column("bgproc_run", "progress")  # SQLite 3.35 and later drop a column in place
