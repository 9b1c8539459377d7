"""Serving: a router slot, host names and drain timeout per environment; switch and retire times

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environment") as batch_op:
        batch_op.add_column(sa.Column("route_slot", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("domains", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("drain_timeout", sa.Float(), nullable=False, server_default=sa.text("30"))
        )
        batch_op.add_column(
            sa.Column("formation", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    # Environments made before routing: a slot each, in the order they were made.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id FROM environment ORDER BY created_at, id"))
    for slot, (environment_id,) in enumerate(rows.fetchall()):
        connection.execute(
            sa.text("UPDATE environment SET route_slot = :slot WHERE id = :id"),
            {"slot": slot, "id": environment_id},
        )
    op.create_index("uq_environment_route_slot", "environment", ["route_slot"], unique=True)
    with op.batch_alter_table("deployment") as batch_op:
        batch_op.add_column(sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment") as batch_op:
        batch_op.drop_column("retired_at")
        batch_op.drop_column("switched_at")
    op.drop_index("uq_environment_route_slot", table_name="environment")
    with op.batch_alter_table("environment") as batch_op:
        batch_op.drop_column("formation")
        batch_op.drop_column("drain_timeout")
        batch_op.drop_column("domains")
        batch_op.drop_column("route_slot")
