"""Alerts: the outbox of alert events (``bgproc_alert``) and a request's alert destinations.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

An event (a run ending error, lost, misfired or expired) is a row of ``bgproc_alert``,
written in the transaction of the status change; (run_id, event) is unique, so however
many writers race, it is recorded once. The notifier claims a row with a lease
(``claimed_until``), sends it, and marks it ``sent_at``; ``due_at`` holds its next try.
``bgproc_request.alerts`` holds the request's own destinations (NULL: its process's and
the installation's defaults). Only additions: no table is copied, on SQLite either.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("bgproc_request", sa.Column("alerts", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "bgproc_alert",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("claim", sa.String(64), nullable=True),
        sa.Column("tries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivered", sa.String(200), nullable=True),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bgproc_alert"),
        sa.UniqueConstraint("run_id", "event", name="uq_bgproc_alert_run_id_event"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_bgproc_alert_sent_at_due_at", "bgproc_alert", ["sent_at", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_bgproc_alert_sent_at_due_at", "bgproc_alert")
    op.drop_table("bgproc_alert")
    op.drop_column("bgproc_request", "alerts")
