"""Calendars: named excluded dates, yearly dates and daily windows, and the requests that
follow them, with what an excluded fire becomes (``on_excluded``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bgproc_calendar",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("dates", sa.JSON(), nullable=False),
        sa.Column("yearly", sa.JSON(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bgproc_calendar")),
        sa.UniqueConstraint("name", name=op.f("uq_bgproc_calendar_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "bgproc_request_calendar",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["bgproc_request.id"], ondelete="CASCADE",
            name=op.f("fk_bgproc_request_calendar_request_id_bgproc_request"),
        ),
        sa.ForeignKeyConstraint(
            ["calendar_id"], ["bgproc_calendar.id"], ondelete="RESTRICT",
            name=op.f("fk_bgproc_request_calendar_calendar_id_bgproc_calendar"),
        ),
        sa.PrimaryKeyConstraint(
            "request_id", "calendar_id", name=op.f("pk_bgproc_request_calendar")
        ),
    )  # fmt: skip
    op.create_index(
        op.f("ix_bgproc_request_calendar_calendar_id"), "bgproc_request_calendar", ["calendar_id"]
    )
    op.add_column(
        "bgproc_request",
        sa.Column("on_excluded", sa.String(24), server_default="skip", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("bgproc_request", "on_excluded")
    op.drop_index(op.f("ix_bgproc_request_calendar_calendar_id"), "bgproc_request_calendar")
    op.drop_table("bgproc_request_calendar")
    op.drop_table("bgproc_calendar")
