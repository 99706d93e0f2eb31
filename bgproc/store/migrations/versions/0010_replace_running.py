"""A request's ``--replace-running``: a fire kills the run still going, then starts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

False for every existing request (their fires skip while a run goes, as before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "bgproc_request",
        sa.Column("replace_running", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("bgproc_request", "replace_running")
