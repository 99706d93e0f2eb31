"""An index that answers ``monitor stats`` on its own: (process, status, duration_ms).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Stats counts every run by process and status and reads every finished run's duration:
over a million runs, scanning the table (each row with its log and parameters) cost
about a second. This index holds just those columns (and the id: SQLite's rowid, an
included column on PostgreSQL), in process order, so the scan reads a fraction of it.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bgproc_run_process_status_duration_ms",
        "bgproc_run",
        ["process", "status", "duration_ms"],
        postgresql_include=["id"],
    )


def downgrade() -> None:
    op.drop_index("ix_bgproc_run_process_status_duration_ms", "bgproc_run")
