"""Environments placed on a run host (the host their run stages go to), and run hosts seen

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:30:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shipyard.shared.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_host",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_seen_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("down_since", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unpacked_bytes", sa.BigInteger(), nullable=True),
        sa.Column("draining", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_host", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    # An environment that runs somewhere stays there: the host of its live processes.
    connection = op.get_bind()
    live = connection.execute(
        sa.text("SELECT environment_id, processes FROM deployment WHERE status = 'live'")
    )
    for environment_id, processes in live:
        records = json.loads(processes) if isinstance(processes, str) else processes
        hosts = sorted({r["host"] for r in records or [] if isinstance(r, dict) and r.get("host")})
        if len(hosts) == 1:
            connection.execute(
                sa.text("UPDATE environment SET run_host = :host WHERE id = :id"),
                {"host": hosts[0], "id": environment_id},
            )


def downgrade() -> None:
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.drop_column("run_host")
    op.drop_table("run_host")
