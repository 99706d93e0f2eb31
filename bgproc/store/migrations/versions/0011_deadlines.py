"""Deadlines: a request's start deadline and maximum runtime, and a run's ``start_by`` and
``overdue_at``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

``bgproc_request.deadlines`` holds the request's own deadlines as one JSON document (NULL:
its process's defaults). A queued run with a start deadline says by when it must start
(``start_by``); the index on (status, start_by) finds the queued runs past it in one range.
A run still going past its maximum runtime is marked once (``overdue_at``). Columns are only
added: no table is copied, on SQLite either.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "bgproc_request", sa.Column("deadlines", sa.JSON(none_as_null=True), nullable=True)
    )
    op.add_column("bgproc_run", sa.Column("start_by", UTC_DATETIME, nullable=True))
    op.add_column("bgproc_run", sa.Column("overdue_at", UTC_DATETIME, nullable=True))
    op.create_index("ix_bgproc_run_status_start_by", "bgproc_run", ["status", "start_by"])


def downgrade() -> None:
    op.drop_index("ix_bgproc_run_status_start_by", "bgproc_run")
    op.drop_column("bgproc_run", "overdue_at")
    op.drop_column("bgproc_run", "start_by")
    op.drop_column("bgproc_request", "deadlines")
