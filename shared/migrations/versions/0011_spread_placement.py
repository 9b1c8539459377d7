"""Environments spread over several run hosts, and each host's share of a deployment

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shipyard.shared.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite takes one with a constant default): nothing to copy.
    op.add_column(
        "environment",
        sa.Column("extra_hosts", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
    )
    op.create_table(
        "deployment_share",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("processes", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.PrimaryKeyConstraint("deployment_id", "host"),
    )


def downgrade() -> None:
    op.drop_table("deployment_share")
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.drop_column("extra_hosts")
