"""The installation's key: signs the ticket an ad-hoc run's message carries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Made with the schema, once: a random value that only holders of the database know, so
a message written by someone who can reach Redis but not the database is not believed.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "bgproc_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(64), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "key": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("bgproc_key")
