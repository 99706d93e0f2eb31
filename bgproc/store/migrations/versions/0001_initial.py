"""Process requests and runs (the Process Request and Process Monitor windows).

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types of bgproc.store.models at this revision.
UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bgproc_request",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("timing", sa.String(16), nullable=False),
        sa.Column("start_at", UTC_DATETIME, nullable=True),
        sa.Column("finish_at", UTC_DATETIME, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("frequency", sa.String(16), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=True),
        sa.Column("repetitions", sa.Integer(), nullable=True),
        sa.Column("daily_option", sa.String(16), nullable=True),
        sa.Column("at_time", sa.String(8), nullable=True),
        sa.Column("days", sa.String(64), nullable=True),
        sa.Column("day", sa.String(8), nullable=True),
        sa.Column("ordinal", sa.String(8), nullable=True),
        sa.Column("weekday", sa.String(3), nullable=True),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("prevent_concurrent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("misfire", sa.String(16), nullable=False, server_default="run-once"),
        sa.Column("status", sa.String(16), nullable=False, server_default="unscheduled"),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bgproc_request")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_bgproc_request_process"), "bgproc_request", ["process"])
    op.create_index(op.f("ix_bgproc_request_status"), "bgproc_request", ["status"])

    op.create_table(
        "bgproc_run",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("scheduled_at", UTC_DATETIME, nullable=True),
        sa.Column("queued_at", UTC_DATETIME, nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False, server_default="scheduler"),
        sa.Column("group_run_id", BIG_ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bgproc_run")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["bgproc_request.id"],
            name=op.f("fk_bgproc_run_request_id_bgproc_request"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_run_id"],
            ["bgproc_run.id"],
            name=op.f("fk_bgproc_run_group_run_id_bgproc_run"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("task_id", name=op.f("uq_bgproc_run_task_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_bgproc_run_started_at"), "bgproc_run", ["started_at"])
    op.create_index(
        op.f("ix_bgproc_run_process_started_at"), "bgproc_run", ["process", "started_at"]
    )
    op.create_index(op.f("ix_bgproc_run_status_started_at"), "bgproc_run", ["status", "started_at"])
    op.create_index(
        op.f("ix_bgproc_run_request_id_started_at"), "bgproc_run", ["request_id", "started_at"]
    )
    op.create_index(op.f("ix_bgproc_run_group_run_id"), "bgproc_run", ["group_run_id"])


def downgrade() -> None:
    op.drop_table("bgproc_run")
    op.drop_table("bgproc_request")
