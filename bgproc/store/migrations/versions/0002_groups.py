"""Process groups: ordered steps, and requests that name a group instead of a process.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-12

SQLite cannot drop a NOT NULL or add a CHECK in place, so ``bgproc_request`` is
copied into a new table (Alembic's batch mode). Dropping the old table with
foreign keys on (the pragma cannot be turned off inside the upgrade's transaction)
would run its ``ON DELETE SET NULL`` on ``bgproc_run.request_id`` and cut every run
from its request, and a copied AUTOINCREMENT table would forget ids once used; both
are saved before the copy and put back after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copy of the column type of bgproc.store.models at this revision.
UTC_DATETIME = sa.DateTime(timezone=True)
SAVED_LINKS = "bgproc_0002_run_request"  # a TEMP table: it vanishes with the connection


def upgrade() -> None:
    op.create_table(
        "bgproc_group",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("stop_on_error", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("prevent_concurrent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bgproc_group")),
        sa.UniqueConstraint("name", name=op.f("uq_bgproc_group_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "bgproc_group_step",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "position", name=op.f("pk_bgproc_group_step")),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["bgproc_group.id"],
            name=op.f("fk_bgproc_group_step_group_id_bgproc_group"),
            ondelete="CASCADE",
        ),
    )
    with (
        _sqlite_links_kept(),
        op.batch_alter_table(
            "bgproc_request", table_kwargs={"sqlite_autoincrement": True}
        ) as batch,
    ):
        batch.alter_column("process", existing_type=sa.String(200), nullable=True)
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_bgproc_request_group_id_bgproc_group"),
            "bgproc_group",
            ["group_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index(op.f("ix_bgproc_request_group_id"), ["group_id"])
        batch.create_check_constraint(
            op.f("ck_bgproc_request_process_or_group"), "(process IS NULL) <> (group_id IS NULL)"
        )


def downgrade() -> None:
    # A request of a group has no process to fall back on: it goes (its runs stay).
    op.execute("DELETE FROM bgproc_request WHERE group_id IS NOT NULL")
    with (
        _sqlite_links_kept(),
        op.batch_alter_table(
            "bgproc_request", table_kwargs={"sqlite_autoincrement": True}
        ) as batch,
    ):
        batch.drop_constraint(op.f("ck_bgproc_request_process_or_group"), type_="check")
        batch.drop_index(op.f("ix_bgproc_request_group_id"))
        batch.drop_constraint(op.f("fk_bgproc_request_group_id_bgproc_group"), type_="foreignkey")
        batch.drop_column("group_id")
        batch.alter_column("process", existing_type=sa.String(200), nullable=False)
    op.drop_table("bgproc_group_step")
    op.drop_table("bgproc_group")


@contextmanager
def _sqlite_links_kept() -> Iterator[None]:
    """On SQLite, put back the run-to-request links and the id counter that a copy of
    ``bgproc_request`` clears; elsewhere, nothing to do."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    op.execute(f"CREATE TEMP TABLE {SAVED_LINKS} (run_id INTEGER PRIMARY KEY, request_id INTEGER)")
    op.execute(
        f"INSERT INTO {SAVED_LINKS} SELECT id, request_id FROM bgproc_run"
        " WHERE request_id IS NOT NULL"
    )
    last_id = bind.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'bgproc_request'"))
    yield
    op.execute(
        f"UPDATE bgproc_run SET request_id = (SELECT request_id FROM {SAVED_LINKS}"
        f" WHERE run_id = bgproc_run.id) WHERE id IN (SELECT run_id FROM {SAVED_LINKS})"
    )
    op.execute(f"DROP TABLE {SAVED_LINKS}")
    if last_id is not None:
        op.execute(
            sa.text(
                "UPDATE sqlite_sequence SET seq = max(seq, :last_id) WHERE name = 'bgproc_request'"
            ).bindparams(last_id=last_id)
        )
