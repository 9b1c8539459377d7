"""Progressive delivery: rollout plans (canary steps, watch window) on environments and
pipelines, a deployment's rollout record and the command a person gave it, and warm standby of
the replaced release (the environment's window, the deployment's end of it)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shipyard.shared.models import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environment") as batch:
        batch.add_column(sa.Column("rollout", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("standby_seconds", sa.Float(), server_default=sa.text("300"), nullable=False)
        )
    with op.batch_alter_table("pipeline") as batch:
        batch.add_column(sa.Column("rollout", sa.JSON(), nullable=True))
    with op.batch_alter_table("deployment") as batch:
        batch.add_column(sa.Column("rollout", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("rollout_command", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch.add_column(sa.Column("standby_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment") as batch:
        batch.drop_column("standby_until")
        batch.drop_column("rollout_command")
        batch.drop_column("rollout")
    with op.batch_alter_table("pipeline") as batch:
        batch.drop_column("rollout")
    with op.batch_alter_table("environment") as batch:
        batch.drop_column("standby_seconds")
        batch.drop_column("rollout")
