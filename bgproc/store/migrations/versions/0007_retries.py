"""Retries on error: a request's retry policy, and the links of a retry to its first attempt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

``bgproc_request.retry`` holds the request's policy as one JSON document (NULL: the
process's default). A run that is retried says when (``retry_at``) and by which run
(``retry_run_id``); each attempt of a fire knows its number, how many are allowed and the
first attempt (``try_number``, ``max_tries``, ``first_run_id``). Columns are only added:
no table is copied, on SQLite either.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("bgproc_request", sa.Column("retry", sa.JSON(), nullable=True))
    op.add_column("bgproc_run", sa.Column("first_run_id", BIG_ID, nullable=True))
    op.add_column(
        "bgproc_run",
        sa.Column("try_number", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("bgproc_run", sa.Column("max_tries", sa.Integer(), nullable=True))
    op.add_column("bgproc_run", sa.Column("retry_at", UTC_DATETIME, nullable=True))
    op.add_column("bgproc_run", sa.Column("retry_run_id", BIG_ID, nullable=True))
    op.create_index("ix_bgproc_run_first_run_id", "bgproc_run", ["first_run_id"])


def downgrade() -> None:
    op.drop_index("ix_bgproc_run_first_run_id", "bgproc_run")
    for column in ("retry_run_id", "retry_at", "max_tries", "try_number", "first_run_id"):
        op.drop_column("bgproc_run", column)
    op.drop_column("bgproc_request", "retry")
