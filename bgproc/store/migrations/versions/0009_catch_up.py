"""Misfire catch-up's bound: how many missed fires a request with ``--misfire catch-up`` runs.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

NULL for the other policies. The policy itself is the ``misfire`` column, which takes the
new value ``catch-up`` as it is (a string, no constraint).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bgproc_request", sa.Column("catch_up_max", sa.Integer(), nullable=True))


def downgrade() -> None:
    # a catch-up request becomes run-once, the policy 0008 knows nearest to it
    op.execute("UPDATE bgproc_request SET misfire = 'run-once' WHERE misfire = 'catch-up'")
    op.drop_column("bgproc_request", "catch_up_max")
