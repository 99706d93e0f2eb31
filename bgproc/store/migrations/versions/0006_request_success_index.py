"""An index that finds each request's last success at once: (request_id, status, ended_at).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

``/metrics`` reports when each scheduled request last succeeded, for an alarm such as
"billing.close_day has not succeeded for 26 h". With this index that is one seek per
request (the newest ``ended_at`` under ``request_id`` and ``success``), however many runs
the request has and however long it has been failing.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bgproc_run_request_id_status_ended_at",
        "bgproc_run",
        ["request_id", "status", "ended_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_bgproc_run_request_id_status_ended_at", "bgproc_run")
